from __future__ import annotations

from pathlib import Path

import pytest

from pigeonhole import constants as c
from pigeonhole.config import Settings
from pigeonhole.exceptions import ConfigurationError

BASE = {
    c.ENV_REVIEW_QUEUE_URL: "http://q/review",
    c.ENV_QUARANTINE_QUEUE_URL: "http://q/quarantine",
    c.ENV_OUTPUT_BUS_NAME: "out",
}


def test_defaults() -> None:
    s = Settings.from_env(BASE)
    assert s.model_dir == Path(c.DEFAULT_MODEL_DIR)
    assert s.review_threshold is None
    assert s.top_k is None
    assert s.ort_threads == 1
    assert s.window_seconds == 300


def test_overrides() -> None:
    s = Settings.from_env(
        {**BASE, c.ENV_REVIEW_THRESHOLD: "0.4", c.ENV_TOP_K: "5", c.ENV_ORT_THREADS: "2", c.ENV_MODEL_DIR: "/m"}
    )
    assert (s.review_threshold, s.top_k, s.ort_threads, s.model_dir) == (0.4, 5, 2, Path("/m"))


def test_missing_required_names_them_all() -> None:
    with pytest.raises(ConfigurationError, match=f"{c.ENV_REVIEW_QUEUE_URL}.*{c.ENV_OUTPUT_BUS_NAME}"):
        Settings.from_env({c.ENV_QUARANTINE_QUEUE_URL: "x"})


@pytest.mark.parametrize(
    ("name", "value"),
    [(c.ENV_REVIEW_THRESHOLD, "1.5"), (c.ENV_REVIEW_THRESHOLD, "high"), (c.ENV_ORT_THREADS, "0"), (c.ENV_TOP_K, "-1")],
)
def test_bad_values_fail_clearly(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({**BASE, name: value})


def test_the_window_fields_are_parsed_once_for_every_function() -> None:
    """Classifier, feedback and drift read the window layout through one parser: same values, same errors."""
    from dataclasses import fields

    from pigeonhole.config import FunctionSettings, MonitorSettings

    env = {
        **BASE,
        c.ENV_WINDOWS_TABLE: "w",
        c.ENV_PREDICTIONS_TABLE: "p",
        c.ENV_WINDOW_SECONDS: "60",
        c.ENV_WINDOW_SHARDS: "4",
        c.ENV_WINDOW_TTL_DAYS: "30",
        c.ENV_CAPTURE_TTL_DAYS: "7",
        c.ENV_MODEL_DIR: "/m",
    }
    classifier, monitor = Settings.from_env(env), MonitorSettings.from_env(env)
    shared = [f.name for f in fields(FunctionSettings)]
    assert {"model_dir", "window_seconds", "window_shards", "window_ttl_days", "capture_ttl_days"} <= set(shared)
    assert [getattr(classifier, n) for n in shared] == [getattr(monitor, n) for n in shared]
    assert (monitor.window_seconds, monitor.window_shards, monitor.model_dir) == (60, 4, Path("/m"))
    for settings in (Settings, MonitorSettings):
        with pytest.raises(ConfigurationError, match=c.ENV_WINDOW_SHARDS):
            settings.from_env({**env, c.ENV_WINDOW_SHARDS: "0"})


def test_settings_can_be_copied_with_a_change() -> None:
    """Tests derive settings with ``Settings(**{**s.__dict__, ...})``: keyword-only fields keep that working."""
    s = Settings.from_env(BASE)
    changed = Settings(**{**s.__dict__, "review_threshold": 1.0})
    assert (changed.review_threshold, changed.output_bus_name) == (1.0, "out")
