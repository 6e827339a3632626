"""One settings object, read from the environment once per container."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
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
        )
