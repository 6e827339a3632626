"""Warm means warm: under provisioned concurrency or SnapStart the classifier's model loads during init."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pigeonhole import constants as c
from pigeonhole.classify import handler as handler_module
from pigeonhole.entry import PREWARMED_INIT_TYPES, Lazy, warm_during_init
from pigeonhole.exceptions import ModelIntegrityError

from .conftest import NAMES, Context, Stack


@pytest.fixture
def lambda_env(stack: Stack, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv(c.ENV_MODEL_DIR, str(model_dir))
    monkeypatch.setenv(c.ENV_REVIEW_QUEUE_URL, stack.review_url)
    monkeypatch.setenv(c.ENV_QUARANTINE_QUEUE_URL, stack.quarantine_url)
    monkeypatch.setenv(c.ENV_OUTPUT_BUS_NAME, NAMES.output_bus)
    yield monkeypatch
    monkeypatch.delenv(c.ENV_LAMBDA_INITIALIZATION_TYPE, raising=False)
    importlib.reload(handler_module)  # leave an un-warmed module for the other tests
    handler_module.reset_for_tests(None)


def _init(monkeypatch: pytest.MonkeyPatch, init_type: str) -> ModuleType:
    """What Lambda's init phase does: import the handler module in an environment of this type."""
    monkeypatch.setenv(c.ENV_LAMBDA_INITIALIZATION_TYPE, init_type)
    return importlib.reload(handler_module)


@pytest.mark.parametrize("init_type", sorted(PREWARMED_INIT_TYPES))
def test_a_prewarmed_environment_loads_the_model_during_init(
    lambda_env: pytest.MonkeyPatch, stack: Stack, init_type: str
) -> None:
    module = _init(lambda_env, init_type)
    built = module.service.current
    assert built is not None, "the model must be loaded before the first request"
    stack.send([json.dumps({"id": "w-1", "time": "2026-11-29T07:01:00Z", "text": "my card has not arrived yet"})])
    response = module.handler(stack.receive_event(), Context())
    assert response["batchItemFailures"] == []
    assert module.service.current is built, "the first request reuses what init built"
    assert len(stack.drain(stack.sink_url)) == 1


def test_on_demand_init_stays_lazy(lambda_env: pytest.MonkeyPatch) -> None:
    module = _init(lambda_env, "on-demand")
    assert module.service.current is None


def test_a_tampered_model_fails_a_prewarmed_init(
    lambda_env: pytest.MonkeyPatch, model_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "model"
    broken.mkdir()
    for f in model_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    data = bytearray((broken / c.MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (broken / c.MODEL_FILE).write_bytes(bytes(data))
    lambda_env.setenv(c.ENV_MODEL_DIR, str(broken))
    with pytest.raises(ModelIntegrityError):
        _init(lambda_env, "provisioned-concurrency")


def test_warm_during_init_reads_only_the_initialization_type() -> None:
    calls: list[int] = []
    holder: Lazy[int] = Lazy(lambda: calls.append(1) or len(calls))
    assert warm_during_init(holder, {}) is False
    assert warm_during_init(holder, {c.ENV_LAMBDA_INITIALIZATION_TYPE: "on-demand"}) is False
    assert calls == []
    assert warm_during_init(holder, {c.ENV_LAMBDA_INITIALIZATION_TYPE: "snap-start"}) is True
    assert warm_during_init(holder, {c.ENV_LAMBDA_INITIALIZATION_TYPE: "provisioned-concurrency"}) is True
    assert calls == [1], "built once, then held"
