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
