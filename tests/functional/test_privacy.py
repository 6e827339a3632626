"""Privacy (issue 8): synthetic e-mail addresses, phone numbers and card numbers sent through every
path of the real handler (auto, review, each quarantine reason, an inference failure whose exception
quotes the text, an observer failure whose exception quotes it, a publish failure, time running out)
reach no log line (tracebacks included), no metric, no exception message or repr we produce. The
output bus carries labels and ids; the review and quarantine queues carry the event by design
(that is what a reviewer needs) and nothing else does."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from pigeonhole.classify import handler as handler_module
from pigeonhole.classify.service import ClassifierService
from pigeonhole.config import Settings

from .conftest import NAMES, REGION, Context, Stack
from .monitoring_support import write_tiny_model

EMAIL = "olivia.tester@example.org"
PHONE = "+1-202-555-0187"
CARD = "4000 0566 5566 5556"
SECRETS = [EMAIL, PHONE, CARD, CARD.replace(" ", "")]
NOW = datetime.now(UTC).isoformat()


def _event(event_id: str, text: str, **extra: Any) -> str:
    return json.dumps({"id": event_id, "time": NOW, "text": text, **extra})


class _LeakyRuntime:
    """Raises with the text in its message, the worst an inference library could do."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def predict(self, texts: list[str]) -> Any:
        if any("explode" in t for t in texts):
            raise RuntimeError(f"cannot featurize {texts!r}")
        return self.real.predict(texts)


class _LeakyObserver:
    def observe(self, classified: Any, quarantined: Any, runtime: Any, deadline: Any = None) -> dict[str, str]:
        texts = [c.event.model_input for _, c in classified]
        raise ValueError(f"cannot count {texts}")


@pytest.fixture
def service(stack: Stack, tmp_path: Path) -> Iterator[ClassifierService]:
    settings = Settings(
        model_dir=write_tiny_model(tmp_path / "model"),
        review_queue_url=stack.review_url,
        quarantine_queue_url=stack.quarantine_url,
        output_bus_name=NAMES.output_bus,
    )
    svc = handler_module.build_service(settings, session=boto3.Session(region_name=REGION))
    svc.runtime = _LeakyRuntime(svc.runtime)  # type: ignore[assignment]
    svc.observer = _LeakyObserver()
    handler_module.reset_for_tests(svc)
    yield svc
    handler_module.reset_for_tests(None)


def _bodies() -> list[str]:
    return [
        _event("auto-1", f"when will my card arrive, mail me at {EMAIL}", phone=PHONE),
        _event("review-1", f"zzz {CARD} qqq", contact={"email": EMAIL, "card": CARD}),
        _event("explode-1", f"explode {CARD} {PHONE}"),
        _event("long-1", f"{EMAIL} " * 100),  # field_too_long
        json.dumps({"id": "type-1", "time": NOW, "text": 5, "card": CARD}),  # wrong_type
        json.dumps({"id": "time-1", "time": f"not a time {PHONE}", "text": "card"}),  # invalid_time
        json.dumps({"id": "old-1", "time": "1999-01-01T00:00:00Z", "text": f"card {EMAIL}"}),  # outside window
        f"not json at all {EMAIL} {CARD}",  # invalid_json
        '{"id": "huge", "time": "' + NOW + '", "text": "' + CARD + '", "n": ' + "7" * 5000 + "}",
    ]


def test_no_personal_data_in_logs_metrics_errors_or_reprs(
    stack: Stack, service: ClassifierService, context: Context, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = io.StringIO()
    original = handler_module.logger.registered_handler.setStream(logs)  # type: ignore[attr-defined]
    # Own the level the assertions read (the drift harness, for one, quiets this logger to ERROR).
    level = handler_module.logger.log_level
    handler_module.logger.setLevel("INFO")
    capsys.readouterr()
    try:
        stack.send(_bodies()[:9])
        event = stack.receive_event()
        assert len(event["Records"]) == 9
        response = handler_module.handler(event, context)
        outcomes = service.classify_batch(event["Records"])  # the same batch again, to read the outcomes
        stack.sqs.delete_queue(QueueUrl=stack.review_url)  # and once more with a publish failure
        handler_module.handler(event, context)
    finally:
        handler_module.logger.registered_handler.setStream(original)  # type: ignore[attr-defined]
        handler_module.logger.setLevel(level)
    printed = capsys.readouterr()
    surfaces = {
        "logs": logs.getvalue(),
        "stdout (EMF)": printed.out,
        "stderr": printed.err,
        "response": json.dumps(response),
        "outcome reprs": "\n".join(repr(o) for o in outcomes.values()),
        "outcome errors": "\n".join(o.error or "" for o in outcomes.values()),
        "reasons": "\n".join(json.dumps(o.reason.to_dict()) for o in outcomes.values() if o.reason),
    }
    assert '"level":"ERROR"' in surfaces["logs"], "the failure paths ran"
    assert "unprocessable" in surfaces["logs"]
    for where, text in surfaces.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked into {where}"

    bus = stack.drain(stack.sink_url)
    assert bus, "the confident event was published"
    for envelope in bus:
        for secret in SECRETS:
            assert secret not in json.dumps(envelope), "the output bus carries labels and ids only"
