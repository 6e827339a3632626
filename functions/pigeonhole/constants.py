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
ENV_EVENT_MAX_AGE_SECONDS: Final = "PIGEONHOLE_EVENT_MAX_AGE_SECONDS"  # oldest event time accepted, before arrival
ENV_EVENT_MAX_LEAD_SECONDS: Final = "PIGEONHOLE_EVENT_MAX_LEAD_SECONDS"  # latest event time accepted, after arrival
ENV_QUARANTINE_BUCKET: Final = "PIGEONHOLE_QUARANTINE_BUCKET"  # optional: full bodies of quarantined events
# Monitoring: window counters, prediction capture, feedback and the drift function.
ENV_WINDOWS_TABLE: Final = "PIGEONHOLE_WINDOWS_TABLE"
ENV_PREDICTIONS_TABLE: Final = "PIGEONHOLE_PREDICTIONS_TABLE"
ENV_FEEDBACK_TABLE: Final = "PIGEONHOLE_FEEDBACK_TABLE"
ENV_CAPTURE_RATE: Final = "PIGEONHOLE_CAPTURE_RATE"  # replaced by the two below; refused when set
ENV_CAPTURE_REVIEW_RATE: Final = "PIGEONHOLE_CAPTURE_REVIEW_RATE"  # share of review-routed events captured
ENV_CAPTURE_AUTO_RATE: Final = "PIGEONHOLE_CAPTURE_AUTO_RATE"  # share of auto-routed events captured
ENV_PER_LABEL_METRICS: Final = "PIGEONHOLE_PER_LABEL_METRICS"  # "true": ClassPredicted per label (costly)
ENV_CAPTURE_TTL_DAYS: Final = "PIGEONHOLE_CAPTURE_TTL_DAYS"
ENV_WINDOW_TTL_DAYS: Final = "PIGEONHOLE_WINDOW_TTL_DAYS"
ENV_WINDOW_SHARDS: Final = "PIGEONHOLE_WINDOW_SHARDS"
ENV_DRIFT_GRACE_SECONDS: Final = "PIGEONHOLE_DRIFT_GRACE_SECONDS"
ENV_DRIFT_REFERENCE_WINDOWS: Final = "PIGEONHOLE_DRIFT_REFERENCE_WINDOWS"
ENV_DRIFT_LOOKBACK_WINDOWS: Final = "PIGEONHOLE_DRIFT_LOOKBACK_WINDOWS"
ENV_FEEDBACK_RETRY_SECONDS: Final = "PIGEONHOLE_FEEDBACK_RETRY_SECONDS"
# Pre-traffic hook: the classifier version to probe, and the stack's golden-accuracy floor.
ENV_HOOK_TARGET_VERSION: Final = "PIGEONHOLE_HOOK_TARGET_VERSION"
ENV_MIN_GOLDEN_ACCURACY: Final = "PIGEONHOLE_MIN_GOLDEN_ACCURACY"
# Canary defaults shared by the stack config and `pigeonhole local canary`, so the rehearsal plays the
# deploy's own split, interval and golden floor.
DEFAULT_CANARY_PERCENT: Final = 10
DEFAULT_CANARY_MINUTES: Final = 10  # long enough for every rollback alarm (alarms.canary_seconds_needed)
DEFAULT_MIN_GOLDEN_ACCURACY: Final = 0.8
ENV_DRIFT_THRESHOLDS: Final = "PIGEONHOLE_DRIFT_THRESHOLDS"  # JSON object overriding the manifest's thresholds
ENV_METRICS_NAMESPACE: Final = "POWERTOOLS_METRICS_NAMESPACE"
ENV_SERVICE_NAME: Final = "POWERTOOLS_SERVICE_NAME"
ENV_ORT_TELEMETRY: Final = "ORT_DISABLE_TELEMETRY"
# Set by Lambda: "on-demand", "provisioned-concurrency" or "snap-start" (pigeonhole.entry.warm reads it).
ENV_LAMBDA_INITIALIZATION_TYPE: Final = "AWS_LAMBDA_INITIALIZATION_TYPE"
# Set by Lambda: the version this environment runs ("$LATEST" or a published number), known at init.
ENV_LAMBDA_FUNCTION_VERSION: Final = "AWS_LAMBDA_FUNCTION_VERSION"

# Defaults.
DEFAULT_MODEL_DIR: Final = "/opt/model"  # a Lambda layer's `model/` folder lands here
DEFAULT_NAMESPACE: Final = "Pigeonhole"
DEFAULT_SERVICE: Final = "classifier"
DEFAULT_MAX_EVENT_BYTES: Final = 16_384
DEFAULT_WINDOW_SECONDS: Final = 300
DEFAULT_EVENT_MAX_AGE_SECONDS: Final = 30 * 86_400
DEFAULT_EVENT_MAX_LEAD_SECONDS: Final = 86_400
DEFAULT_CAPTURE_TTL_DAYS: Final = 14  # = SQS's maximum retention: dedup markers outlive any redelivery
DEFAULT_WINDOW_TTL_DAYS: Final = 90
DEFAULT_WINDOW_SHARDS: Final = 1
DEFAULT_DRIFT_GRACE_SECONDS: Final = 120  # the stack passes drift_grace_seconds(...) of its queue settings
# A label whose prediction is not captured yet goes back to SQS for up to this long (then: unknown_id).
# Covers three classifier retries at the default 181 s visibility; the feedback queue's 5 receives at
# 181 s span ~724 s, and the last receive counts the label instead of letting it reach the DLQ.
DEFAULT_FEEDBACK_RETRY_SECONDS: Final = 600
DEFAULT_DRIFT_REFERENCE_WINDOWS: Final = 12
DEFAULT_DRIFT_LOOKBACK_WINDOWS: Final = 288  # one day of 5-minute windows

# DynamoDB key layout shared by the functions, the CDK stack and the local runtime.
TABLE_PARTITION_KEY: Final = "pk"
TABLE_SORT_KEY: Final = "sk"  # windows table only
TABLE_TTL_ATTRIBUTE: Final = "expires_at"  # epoch seconds

# Event contract.
INPUT_SCHEMA: Final = "pigeonhole.input/v1"
OUTPUT_SCHEMA: Final = "pigeonhole.classification/v1"
QUARANTINE_SCHEMA: Final = "pigeonhole.quarantine/v1"
OUTPUT_SOURCE: Final = "pigeonhole.classifier"
OUTPUT_DETAIL_TYPE: Final = "EventClassified"
FEEDBACK_DETAIL_TYPE: Final = "LabelFeedback"
# The classifier's side-effect-free probe: an invocation whose payload has this key is answered with
# labels for the events it carries (nothing published, counted or captured). The pre-traffic hook uses it.
GOLDEN_PROBE_KEY: Final = "pigeonhole_golden_probe"

# Model package file names.
MODEL_FILE: Final = "model.onnx"
MANIFEST_FILE: Final = "manifest.json"
GOLDEN_FILE: Final = "golden.jsonl"  # labelled held-out events the pre-traffic hook replays
