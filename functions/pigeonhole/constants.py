"""Every environment variable and fixed name in one place, shared by functions, infra and tools."""

from typing import Final

# Environment variable names (read once, by pigeonhole.config.Settings.from_env).
ENV_MODEL_DIR: Final = "PIGEONHOLE_MODEL_DIR"
ENV_REVIEW_QUEUE_URL: Final = "PIGEONHOLE_REVIEW_QUEUE_URL"
ENV_QUARANTINE_QUEUE_URL: Final = "PIGEONHOLE_QUARANTINE_QUEUE_URL"
ENV_OUTPUT_BUS_NAME: Final = "PIGEONHOLE_OUTPUT_BUS_NAME"
ENV_REVIEW_THRESHOLD: Final = "PIGEONHOLE_REVIEW_THRESHOLD"
ENV_TOP_K: Final = "PIGEONHOLE_TOP_K"
ENV_MAX_EVENT_BYTES: Final = "PIGEONHOLE_MAX_EVENT_BYTES"
ENV_ORT_THREADS: Final = "PIGEONHOLE_ORT_THREADS"
ENV_WINDOW_SECONDS: Final = "PIGEONHOLE_WINDOW_SECONDS"
ENV_METRICS_NAMESPACE: Final = "POWERTOOLS_METRICS_NAMESPACE"
ENV_SERVICE_NAME: Final = "POWERTOOLS_SERVICE_NAME"
ENV_ORT_TELEMETRY: Final = "ORT_DISABLE_TELEMETRY"

# Defaults.
DEFAULT_MODEL_DIR: Final = "/opt/model"  # a Lambda layer's `model/` folder lands here
DEFAULT_NAMESPACE: Final = "Pigeonhole"
DEFAULT_SERVICE: Final = "classifier"
DEFAULT_MAX_EVENT_BYTES: Final = 16_384
DEFAULT_WINDOW_SECONDS: Final = 300

# Event contract.
INPUT_SCHEMA: Final = "pigeonhole.input/v1"
OUTPUT_SCHEMA: Final = "pigeonhole.classification/v1"
QUARANTINE_SCHEMA: Final = "pigeonhole.quarantine/v1"
OUTPUT_SOURCE: Final = "pigeonhole.classifier"
OUTPUT_DETAIL_TYPE: Final = "EventClassified"

# Model package file names.
MODEL_FILE: Final = "model.onnx"
MANIFEST_FILE: Final = "manifest.json"
