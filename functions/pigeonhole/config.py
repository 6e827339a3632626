"""One settings object per function, read from the environment once per container.

The fields every function shares (model package, window layout and retention) are declared and parsed
once, in ``FunctionSettings``; ``Settings`` (classifier) and ``MonitorSettings`` (feedback, drift) add
their own. Environment variable names live in ``pigeonhole.constants``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from pigeonhole import constants as c
from pigeonhole.capture import DEFAULT_AUTO_RATE, DEFAULT_REVIEW_RATE, CapturePolicy
from pigeonhole.exceptions import ConfigurationError


def drift_grace_seconds(visibility_timeout_s: int, batching_window_s: int, function_timeout_s: int = 0) -> int:
    """How long the drift function waits after a window ends: until a classifier batch that failed at
    the window's end can have been delivered again (visibility timeout), batched (batching window) and
    counted (one invocation, at most the function timeout). The stack derives it from the same
    settings that size the ingest queue, so the two cannot drift apart."""
    if min(visibility_timeout_s, batching_window_s, function_timeout_s) < 0:
        raise ValueError("durations must be >= 0")
    return visibility_timeout_s + batching_window_s + function_timeout_s


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


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false, got {raw!r}")


def capture_policy(env: Mapping[str, str]) -> CapturePolicy:
    """The capture policy from the environment; the retired flat rate is refused, not silently ignored."""
    if env.get(c.ENV_CAPTURE_RATE):
        raise ConfigurationError(
            f"{c.ENV_CAPTURE_RATE} is replaced by {c.ENV_CAPTURE_REVIEW_RATE} and {c.ENV_CAPTURE_AUTO_RATE}"
        )
    return CapturePolicy(
        review_rate=_rate(env, c.ENV_CAPTURE_REVIEW_RATE, DEFAULT_REVIEW_RATE),
        auto_rate=_rate(env, c.ENV_CAPTURE_AUTO_RATE, DEFAULT_AUTO_RATE),
    )


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


class _Common(TypedDict):
    model_dir: Path
    predictions_table: str | None
    window_seconds: int
    window_shards: int
    window_ttl_days: int
    capture_ttl_days: int
    capture: CapturePolicy


@dataclass(frozen=True, kw_only=True)
class FunctionSettings:
    """What every function reads alike: the model package and the window layout, parsed in one place.

    The window length and shard count must be equal in all three functions: they name the items the
    classifier writes and the feedback and drift functions read.
    """

    model_dir: Path
    predictions_table: str | None = None
    window_seconds: int = c.DEFAULT_WINDOW_SECONDS
    window_shards: int = c.DEFAULT_WINDOW_SHARDS
    window_ttl_days: int = c.DEFAULT_WINDOW_TTL_DAYS
    capture_ttl_days: int = c.DEFAULT_CAPTURE_TTL_DAYS
    # Which predictions are captured (the classifier decides; every function gets the same value).
    capture: CapturePolicy = field(default_factory=CapturePolicy)

    @staticmethod
    def _common(env: Mapping[str, str]) -> _Common:
        return _Common(
            model_dir=Path(env.get(c.ENV_MODEL_DIR) or c.DEFAULT_MODEL_DIR),
            predictions_table=_optional(env, c.ENV_PREDICTIONS_TABLE),
            window_seconds=_int(env, c.ENV_WINDOW_SECONDS, c.DEFAULT_WINDOW_SECONDS),
            window_shards=_int(env, c.ENV_WINDOW_SHARDS, c.DEFAULT_WINDOW_SHARDS),
            window_ttl_days=_int(env, c.ENV_WINDOW_TTL_DAYS, c.DEFAULT_WINDOW_TTL_DAYS),
            capture_ttl_days=_int(env, c.ENV_CAPTURE_TTL_DAYS, c.DEFAULT_CAPTURE_TTL_DAYS),
            capture=capture_policy(env),
        )


@dataclass(frozen=True, kw_only=True)
class Settings(FunctionSettings):
    """Runtime configuration of the classifier; the CDK stack and the local runtime set the same variables."""

    review_queue_url: str
    quarantine_queue_url: str
    output_bus_name: str
    review_threshold: float | None = None  # None: use the manifest's threshold
    top_k: int | None = None  # None: use the manifest's top_k
    max_event_bytes: int = c.DEFAULT_MAX_EVENT_BYTES
    ort_threads: int = 1
    # Window counters + prediction capture (the WindowRecorder); off unless the windows table is set.
    windows_table: str | None = None
    # ClassPredicted per label: one CloudWatch metric per label and version (~$0.30 a month each); off
    # by default, the class mix is in the drift report and its per-window metrics.
    per_label_metrics: bool = False
    # Plausible event times, around the record's arrival (docs/reliability.md "Event times").
    event_max_age_seconds: int = c.DEFAULT_EVENT_MAX_AGE_SECONDS
    event_max_lead_seconds: int = c.DEFAULT_EVENT_MAX_LEAD_SECONDS
    quarantine_bucket: str | None = None  # full bodies of quarantined events; off unless set

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
        common = cls._common(env)
        windows = _optional(env, c.ENV_WINDOWS_TABLE)
        if windows and not common["predictions_table"]:
            # The dedup markers that make counting exact live in the predictions table: no table, no exactness.
            raise ConfigurationError(f"{c.ENV_WINDOWS_TABLE} is set but {c.ENV_PREDICTIONS_TABLE} is not")
        return cls(
            **common,
            review_queue_url=env[c.ENV_REVIEW_QUEUE_URL],
            quarantine_queue_url=env[c.ENV_QUARANTINE_QUEUE_URL],
            output_bus_name=env[c.ENV_OUTPUT_BUS_NAME],
            review_threshold=_optional_float(env, c.ENV_REVIEW_THRESHOLD),
            top_k=_int(env, c.ENV_TOP_K, 0, minimum=0) or None,
            max_event_bytes=_int(env, c.ENV_MAX_EVENT_BYTES, c.DEFAULT_MAX_EVENT_BYTES, minimum=64),
            ort_threads=_int(env, c.ENV_ORT_THREADS, 1),
            windows_table=windows,
            per_label_metrics=_bool(env, c.ENV_PER_LABEL_METRICS, False),
            event_max_age_seconds=_int(env, c.ENV_EVENT_MAX_AGE_SECONDS, c.DEFAULT_EVENT_MAX_AGE_SECONDS, minimum=0),
            event_max_lead_seconds=_int(env, c.ENV_EVENT_MAX_LEAD_SECONDS, c.DEFAULT_EVENT_MAX_LEAD_SECONDS, minimum=0),
            quarantine_bucket=_optional(env, c.ENV_QUARANTINE_BUCKET),
        )


@dataclass(frozen=True, kw_only=True)
class MonitorSettings(FunctionSettings):
    """Configuration of the feedback and drift functions (they need no queues of the classifier)."""

    windows_table: str
    feedback_table: str | None = None  # feedback only (predictions_table too)
    grace_seconds: int = c.DEFAULT_DRIFT_GRACE_SECONDS
    feedback_retry_seconds: int = c.DEFAULT_FEEDBACK_RETRY_SECONDS  # feedback only
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
            **cls._common(env),
            windows_table=windows,
            feedback_table=_optional(env, c.ENV_FEEDBACK_TABLE),
            grace_seconds=_int(env, c.ENV_DRIFT_GRACE_SECONDS, c.DEFAULT_DRIFT_GRACE_SECONDS, minimum=0),
            feedback_retry_seconds=_int(env, c.ENV_FEEDBACK_RETRY_SECONDS, c.DEFAULT_FEEDBACK_RETRY_SECONDS, minimum=0),
            reference_windows=_int(env, c.ENV_DRIFT_REFERENCE_WINDOWS, c.DEFAULT_DRIFT_REFERENCE_WINDOWS, minimum=0),
            lookback_windows=_int(env, c.ENV_DRIFT_LOOKBACK_WINDOWS, c.DEFAULT_DRIFT_LOOKBACK_WINDOWS),
            threshold_overrides=_json_object(env, c.ENV_DRIFT_THRESHOLDS),
        )


@dataclass(frozen=True)
class HookSettings:
    """Configuration of the pre-traffic hook: which version to probe and the stack's accuracy floor."""

    model_dir: Path  # the package deployed with the new version (same layer): its golden set
    target_version_arn: str  # the classifier version this deploy published (qualified ARN)
    min_golden_accuracy: float  # the deployer's floor; the hook uses max(this, the manifest's)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HookSettings:
        env = os.environ if env is None else env
        target = _optional(env, c.ENV_HOOK_TARGET_VERSION)
        floor = _optional_float(env, c.ENV_MIN_GOLDEN_ACCURACY)
        if not target or floor is None:
            raise ConfigurationError(
                f"missing required environment variables: {c.ENV_HOOK_TARGET_VERSION}, {c.ENV_MIN_GOLDEN_ACCURACY}"
            )
        if not 0.0 <= floor <= 1.0:
            raise ConfigurationError(f"{c.ENV_MIN_GOLDEN_ACCURACY} must be within [0, 1], got {floor}")
        return cls(
            model_dir=Path(env.get(c.ENV_MODEL_DIR) or c.DEFAULT_MODEL_DIR),
            target_version_arn=target,
            min_golden_accuracy=floor,
        )
