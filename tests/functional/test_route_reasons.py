"""Route reasons through the real handler, real model and real moto queues: every output and review
message says why it went where it went (confident, low_confidence, unknown), and each reason is a metric.

The committed package may or may not carry an unknown block; these tests write their own manifest
(same model file, so its pins still hold) with a hand-set unknown score and per-class threshold, so the
routing rules are tested whatever the build fitted.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from pigeonhole import metrics_catalog as mc
from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.classify import handler as handler_module
from pigeonhole.classify.service import ClassifierService
from pigeonhole.config import Settings
from pigeonhole.drift.recorder import WindowRecorder
from pigeonhole.model.features import normalize_text
from pigeonhole.model.runtime import ModelRuntime

from .conftest import REGION, Context, Stack
from .monitoring_support import PREDICTIONS, WINDOWS, at, classification, emf, get_window, moto_dynamodb, runtime

CARD = "I still have not received my new card, when will it arrive?"  # card_arrival, confident
STOLEN = "My card was stolen yesterday, please block it right away"  # lost_or_stolen_card, confident
OFF_TOPIC = "qwzx plorb vantablack trombone sunrise"  # mostly out of vocabulary


def _body(i: int, text: str) -> str:
    return json.dumps({"id": f"evt-{i}", "time": "2026-11-29T07:01:00Z", "text": text})


def _package(model_dir: Path, tmp_path: Path, **changes: Any) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    for key, value in changes.items():
        if key == "per_class":
            manifest["thresholds"]["per_class"] = value
        else:
            manifest[key] = value
    (target / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return target


# The unknown score of this test: sigmoid(20 * (oov_share - 0.5)): >= 0.5 exactly when half or more of
# the words are out of vocabulary. Hand-set so the expected route is known from the vocabulary alone.
UNKNOWN = {"features": ["oov_share", "max_prob"], "weights": [20.0, 0.0], "bias": -10.0, "threshold": 0.5}


@pytest.fixture
def package(model_dir: Path, tmp_path: Path) -> Path:
    return _package(model_dir, tmp_path, unknown=UNKNOWN, per_class={"lost_or_stolen_card": 0.999999})


@pytest.fixture
def routed(stack: Stack, settings: Settings, package: Path) -> Iterator[ClassifierService]:
    service = handler_module.build_service(
        Settings(**{**settings.__dict__, "model_dir": package}), session=boto3.Session(region_name=REGION)
    )
    handler_module.reset_for_tests(service)
    yield service
    handler_module.reset_for_tests(None)


def test_every_message_carries_its_route_reason(
    stack: Stack, routed: ClassifierService, context: Context, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = routed.runtime
    vocab = runtime.vocabulary
    assert sum(w not in vocab for w in normalize_text(OFF_TOPIC).split()) >= 3, "the off-topic text must be unknown"
    assert all(w.strip("?,") in vocab for w in normalize_text(CARD).split()), "the card text must be known"
    probs = runtime.predict_proba([CARD, STOLEN])
    assert probs[0].max() >= routed.threshold
    assert probs[1].max() < 0.999999
    capsys.readouterr()
    stack.send([_body(1, CARD), _body(2, STOLEN), _body(3, OFF_TOPIC)])
    assert handler_module.handler(stack.receive_event(), context)["batchItemFailures"] == []

    (auto,) = [o["detail"] for o in stack.drain(stack.sink_url)]
    assert (auto["id"], auto["route"], auto["route_reason"], auto["label"]) == (
        "evt-1",
        "auto",
        "confident",
        "card_arrival",
    )
    assert auto["unknown_score"] < 0.5
    review = {r["id"]: r for r in stack.drain(stack.review_url)}
    assert set(review) == {"evt-2", "evt-3"}
    assert (review["evt-2"]["route_reason"], review["evt-2"]["label"]) == ("low_confidence", "lost_or_stolen_card")
    assert review["evt-3"]["route_reason"] == "unknown"
    assert review["evt-3"]["unknown_score"] >= 0.5
    assert all(r["route"] == "review" and r["input"]["text"] for r in review.values())

    points = emf(capsys.readouterr().out)
    catalog = {m.name: m for m in mc.CLASSIFIER_METRICS}
    for p in points:  # each emitted with its catalog unit and dimension set
        assert (p["unit"], set(p["dimensions"])) == (catalog[p["name"]].unit, set(catalog[p["name"]].dimensions))
    got = {p["name"]: p["value"] for p in points if p["name"].startswith("EventsRoute") or p["name"] == "UnknownRate"}
    assert got == {
        "EventsRoutedAuto": 1.0,
        "EventsRoutedToReview": 2.0,
        "EventsRouteConfident": 1.0,
        "EventsRouteLowConfidence": 1.0,
        "EventsRouteUnknown": 1.0,
        "UnknownRate": pytest.approx(100.0 / 3),
    }
    version = runtime.manifest.version
    assert {p["dimensions"]["ModelVersion"] for p in points if p["name"] == "EventsRouteUnknown"} == {version}


def test_a_confident_label_on_an_unknown_text_still_goes_to_review(
    stack: Stack, routed: ClassifierService, context: Context
) -> None:
    """The unknown score overrides confidence: most words unknown, the label still confident."""
    text = "activate my card qwzx plorb vantablack trombone"  # 4 of 7 words unknown
    assert float(routed.runtime.predict_proba([text]).max()) >= routed.threshold, "the text must look confident"
    stack.send([_body(1, text)])
    handler_module.handler(stack.receive_event(), context)
    assert stack.drain(stack.sink_url) == []
    (review,) = stack.drain(stack.review_url)
    assert (review["route"], review["route_reason"]) == ("review", "unknown")


def test_the_operator_threshold_replaces_the_per_class_ones(
    stack: Stack, package: Path, settings: Settings, context: Context
) -> None:
    """PIGEONHOLE_REVIEW_THRESHOLD is one threshold for every class; the unknown route stays on."""
    relaxed = Settings(**{**settings.__dict__, "model_dir": package, "review_threshold": 0.0})
    service = handler_module.build_service(relaxed, session=boto3.Session(region_name=REGION))
    handler_module.reset_for_tests(service)
    try:
        stack.send([_body(2, STOLEN), _body(3, OFF_TOPIC)])
        handler_module.handler(stack.receive_event(), context)
    finally:
        handler_module.reset_for_tests(None)
    (auto,) = [o["detail"] for o in stack.drain(stack.sink_url)]
    assert (auto["id"], auto["route_reason"]) == ("evt-2", "confident")
    (review,) = stack.drain(stack.review_url)
    assert (review["id"], review["route_reason"]) == ("evt-3", "unknown")


def test_a_package_without_an_unknown_block_has_no_unknown_route(
    stack: Stack, settings: Settings, model_dir: Path, tmp_path: Path, context: Context, capsys: Any
) -> None:
    package = _package(model_dir, tmp_path, unknown=None, per_class={})
    service = handler_module.build_service(
        Settings(**{**settings.__dict__, "model_dir": package}), session=boto3.Session(region_name=REGION)
    )
    handler_module.reset_for_tests(service)
    try:
        capsys.readouterr()
        stack.send([_body(1, CARD), _body(3, OFF_TOPIC)])
        handler_module.handler(stack.receive_event(), context)
    finally:
        handler_module.reset_for_tests(None)
    (auto,) = [o["detail"] for o in stack.drain(stack.sink_url)]
    assert (auto["route_reason"], auto["unknown_score"]) == ("confident", None)
    (review,) = stack.drain(stack.review_url)
    assert (review["route_reason"], review["unknown_score"]) == ("low_confidence", None)
    names = {p["name"]: p["value"] for p in emf(capsys.readouterr().out)}
    assert names["EventsRouteUnknown"] == 0.0
    assert "UnknownRate" not in names, "no unknown score, no unknown rate"


def test_a_failing_unknown_score_fails_only_its_own_record(
    stack: Stack, routed: ClassifierService, context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch pass fails, so each event is scored alone; the one whose score still fails is quarantined
    (reason unprocessable, step routing), its neighbours are routed as usual."""
    original = ModelRuntime.unknown_scores

    def flaky(self: ModelRuntime, texts: Sequence[str], probabilities: Any, distance: Any = None) -> Any:
        if len(texts) > 1 or "poison" in texts[0]:
            raise ValueError("boom")
        return original(self, texts, probabilities, distance)

    monkeypatch.setattr(ModelRuntime, "unknown_scores", flaky)
    stack.send([_body(1, CARD), _body(2, "poison card arrival"), _body(3, OFF_TOPIC)])
    assert handler_module.handler(stack.receive_event(), context)["batchItemFailures"] == []
    (auto,) = [o["detail"] for o in stack.drain(stack.sink_url)]
    assert (auto["id"], auto["route_reason"]) == ("evt-1", "confident")
    (review,) = stack.drain(stack.review_url)
    assert (review["id"], review["route_reason"]) == ("evt-3", "unknown")
    (quarantined,) = stack.drain(stack.quarantine_url)
    assert quarantined["event_id"] == "evt-2"
    assert quarantined["reason"]["code"] == "unprocessable"
    assert "routing" in quarantined["reason"]["detail"]


NOW = at("2026-11-29T07:03:30Z").timestamp()  # inside the events' window


def test_the_window_counts_the_unknown_events() -> None:
    """The recorder adds the events routed as unknown to their window (``unk``), a subset of review."""
    events = [
        classification("evt-1", 0, 0.9),
        replace(classification("evt-2", 1, 0.3), route_reason="low_confidence"),
        replace(classification("evt-3", 2, 0.95), route="review", route_reason="unknown"),
        replace(classification("evt-4", 1, 0.2), route_reason="unknown"),
    ]
    with moto_dynamodb() as client:
        recorder = WindowRecorder(DynamoDBAdapter(client), WINDOWS, PREDICTIONS, clock=lambda: NOW)
        assert recorder.observe([(f"m-{c.event.id}", c) for c in events], [], runtime()) == {}
        window = get_window(client, "2026-11-29T07:00:00Z")
    assert (window["n"], window["rev"], window["unk"]) == (4, 3, 2)
