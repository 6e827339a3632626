"""One settings object, read from the environment once per container."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pigeonhole import constants as c
from pigeonhole.exceptions import ConfigurationError


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {value}")
    return value


def _optional_float(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from exc
    if not 0.0 <= value <= 1.0:
        raise ConfigurationError(f"{name} must be within [0, 1], got {value}")
    return value


def _rate(env: Mapping[str, str], name: str, default: float) -> float:
    value = _optional_float(env, name)
    return default if value is None else value


def _json_object(env: Mapping[str, str], name: str) -> dict[str, object]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{name} must be a JSON object, got {raw!r}") from exc
    if not isinstance(value, dict):
        raise ConfigurationError(f"{name} must be a JSON object, got {raw!r}")
    return value


def _optional(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name) or None


@dataclass(frozen=True)
class Settings:
    """Runtime configuration of the classifier; the CDK stack and the local runtime set the same variables."""

    model_dir: Path
    review_queue_url: str
    quarantine_queue_url: str
    output_bus_name: str
    review_threshold: float | None = None  # None: use the manifest's threshold
    top_k: int | None = None  # None: use the manifest's top_k
    max_event_bytes: int = c.DEFAULT_MAX_EVENT_BYTES
    ort_threads: int = 1
    window_seconds: int = c.DEFAULT_WINDOW_SECONDS
    # Window counters + prediction capture (the WindowRecorder); off unless the windows table is set.
    windows_table: str | None = None
    predictions_table: str | None = None
    capture_rate: float = c.DEFAULT_CAPTURE_RATE
    capture_ttl_days: int = c.DEFAULT_CAPTURE_TTL_DAYS
    window_ttl_days: int = c.DEFAULT_WINDOW_TTL_DAYS
    window_shards: int = c.DEFAULT_WINDOW_SHARDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [
            name
            for name in (c.ENV_REVIEW_QUEUE_URL, c.ENV_QUARANTINE_QUEUE_URL, c.ENV_OUTPUT_BUS_NAME)
            if not env.get(name)
        ]
        if missing:
            raise ConfigurationError(f"missing required environment variables: {', '.join(missing)}")
        windows, predictions = _optional(env, c.ENV_WINDOWS_TABLE), _optional(env, c.ENV_PREDICTIONS_TABLE)
        if windows and not predictions:
            # The dedup markers that make counting exact live in the predictions table: no table, no exactness.
            raise ConfigurationError(f"{c.ENV_WINDOWS_TABLE} is set but {c.ENV_PREDICTIONS_TABLE} is not")
        return cls(
            model_dir=Path(env.get(c.ENV_MODEL_DIR) or c.DEFAULT_MODEL_DIR),
            review_queue_url=env[c.ENV_REVIEW_QUEUE_URL],
            quarantine_queue_url=env[c.ENV_QUARANTINE_QUEUE_URL],
            output_bus_name=env[c.ENV_OUTPUT_BUS_NAME],
            review_threshold=_optional_float(env, c.ENV_REVIEW_THRESHOLD),
            top_k=_int(env, c.ENV_TOP_K, 0, minimum=0) or None,
            max_event_bytes=_int(env, c.ENV_MAX_EVENT_BYTES, c.DEFAULT_MAX_EVENT_BYTES, minimum=64),
            ort_threads=_int(env, c.ENV_ORT_THREADS, 1),
            window_seconds=_int(env, c.ENV_WINDOW_SECONDS, c.DEFAULT_WINDOW_SECONDS),
            windows_table=windows,
            predictions_table=predictions,
            capture_rate=_rate(env, c.ENV_CAPTURE_RATE, c.DEFAULT_CAPTURE_RATE),
            capture_ttl_days=_int(env, c.ENV_CAPTURE_TTL_DAYS, c.DEFAULT_CAPTURE_TTL_DAYS),
            window_ttl_days=_int(env, c.ENV_WINDOW_TTL_DAYS, c.DEFAULT_WINDOW_TTL_DAYS),
            window_shards=_int(env, c.ENV_WINDOW_SHARDS, c.DEFAULT_WINDOW_SHARDS),
        )


@dataclass(frozen=True)
class MonitorSettings:
    """Configuration of the feedback and drift functions (they need no queues of the classifier).

    The window length and shard count must equal the classifier's: they name the items both read.
    """

    model_dir: Path
    windows_table: str
    predictions_table: str | None = None  # feedback only
    feedback_table: str | None = None  # feedback only
    window_seconds: int = c.DEFAULT_WINDOW_SECONDS
    window_shards: int = c.DEFAULT_WINDOW_SHARDS
    window_ttl_days: int = c.DEFAULT_WINDOW_TTL_DAYS
    capture_ttl_days: int = c.DEFAULT_CAPTURE_TTL_DAYS
    grace_seconds: int = c.DEFAULT_DRIFT_GRACE_SECONDS
    reference_windows: int = c.DEFAULT_DRIFT_REFERENCE_WINDOWS
    lookback_windows: int = c.DEFAULT_DRIFT_LOOKBACK_WINDOWS
    threshold_overrides: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MonitorSettings:
        env = os.environ if env is None else env
        windows = _optional(env, c.ENV_WINDOWS_TABLE)
        if not windows:
            raise ConfigurationError(f"missing required environment variables: {c.ENV_WINDOWS_TABLE}")
        return cls(
            model_dir=Path(env.get(c.ENV_MODEL_DIR) or c.DEFAULT_MODEL_DIR),
            windows_table=windows,
            predictions_table=_optional(env, c.ENV_PREDICTIONS_TABLE),
            feedback_table=_optional(env, c.ENV_FEEDBACK_TABLE),
            window_seconds=_int(env, c.ENV_WINDOW_SECONDS, c.DEFAULT_WINDOW_SECONDS),
            window_shards=_int(env, c.ENV_WINDOW_SHARDS, c.DEFAULT_WINDOW_SHARDS),
            window_ttl_days=_int(env, c.ENV_WINDOW_TTL_DAYS, c.DEFAULT_WINDOW_TTL_DAYS),
            capture_ttl_days=_int(env, c.ENV_CAPTURE_TTL_DAYS, c.DEFAULT_CAPTURE_TTL_DAYS),
            grace_seconds=_int(env, c.ENV_DRIFT_GRACE_SECONDS, c.DEFAULT_DRIFT_GRACE_SECONDS, minimum=0),
            reference_windows=_int(env, c.ENV_DRIFT_REFERENCE_WINDOWS, c.DEFAULT_DRIFT_REFERENCE_WINDOWS, minimum=0),
            lookback_windows=_int(env, c.ENV_DRIFT_LOOKBACK_WINDOWS, c.DEFAULT_DRIFT_LOOKBACK_WINDOWS),
            threshold_overrides=_json_object(env, c.ENV_DRIFT_THRESHOLDS),
        )
