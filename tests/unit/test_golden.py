"""The golden-set verdict: true labels judge the candidate, the stack's floor cannot be lowered, files are pinned."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from pigeonhole.constants import GOLDEN_FILE
from pigeonhole.exceptions import ManifestError, ModelIntegrityError
from pigeonhole.model.golden import GoldenEvent, evaluate_golden, load_golden
from pigeonhole.model.manifest import GoldenSpec, Manifest, load_manifest

CLASSES = ["a", "b", "c", "d"]


def _events(per_class: int = 5) -> list[GoldenEvent]:
    return [
        GoldenEvent(id=f"{c}{i}", fields={"text": f"event {c} {i}"}, label=c, predicted=c)
        for c in CLASSES
        for i in range(per_class)
    ]


def _package(tmp_path: Path, model_dir: Path, events: Sequence[GoldenEvent], **spec: object) -> Manifest:
    data = "".join(e.to_json() + "\n" for e in events).encode("utf-8")
    (tmp_path / GOLDEN_FILE).write_bytes(data)
    base = load_manifest(model_dir)
    golden = GoldenSpec(
        file=GOLDEN_FILE,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        n_events=len(events),
        n_classes=len({e.label for e in events}),
        source="test",
        accuracy_int8=1.0,
        min_accuracy=float(spec.get("min_accuracy", 0.9)),  # type: ignore[arg-type]
        min_agreement=float(spec.get("min_agreement", 0.95)),  # type: ignore[arg-type]
        scored_in_runs_of=int(spec.get("runs", 10)),  # type: ignore[call-overload]
    )
    return base.model_copy(update={"golden": golden, "classes": CLASSES + base.classes[len(CLASSES) :]})


def _truth(events: Sequence[GoldenEvent]) -> dict[str, str]:
    return {e.fields["text"]: e.label for e in events}


def test_a_correct_candidate_passes(tmp_path: Path, model_dir: Path) -> None:
    events = _events()
    golden = load_golden(tmp_path, _package(tmp_path, model_dir, events))
    truth = _truth(events)
    verdict = evaluate_golden(golden, lambda batch: [truth[f["text"]] for f in batch])
    assert verdict.passed
    assert verdict.accuracy == 1.0
    assert verdict.agreement == 1.0
    assert verdict.reasons == ()
    assert verdict.n_events == 20


def test_a_shuffled_label_model_fails_although_it_agrees_with_its_own_build(tmp_path: Path, model_dir: Path) -> None:
    """The trap: the build of a shuffled-label model recorded its own (wrong) predictions. Self-agreement
    is perfect; accuracy against the TRUE labels is what fails it."""
    rotate = {c: CLASSES[(i + 1) % len(CLASSES)] for i, c in enumerate(CLASSES)}
    events = [GoldenEvent(e.id, e.fields, e.label, rotate[e.label]) for e in _events()]
    manifest = _package(tmp_path, model_dir, events, min_accuracy=0.0)  # a broken build also writes a low bar
    golden = load_golden(tmp_path, manifest)
    own = {e.fields["text"]: e.predicted for e in events}
    verdict = evaluate_golden(golden, lambda batch: [own[f["text"]] for f in batch], min_accuracy_floor=0.8)
    assert verdict.agreement == 1.0
    assert verdict.accuracy == 0.0
    assert not verdict.passed
    assert verdict.min_accuracy == 0.8  # the floor, not the manifest's 0.0
    assert "accuracy" in verdict.reasons[0]
    assert verdict.wrong_by_class == {c: 5 for c in CLASSES}


def test_the_manifest_can_raise_the_bar_above_the_floor(tmp_path: Path, model_dir: Path) -> None:
    events = _events()
    golden = load_golden(tmp_path, _package(tmp_path, model_dir, events, min_accuracy=0.99))
    truth = _truth(events)
    first_wrong = {events[0].fields["text"]: "b"}
    verdict = evaluate_golden(
        golden, lambda batch: [first_wrong.get(f["text"], truth[f["text"]]) for f in batch], min_accuracy_floor=0.5
    )
    assert verdict.accuracy == pytest.approx(0.95)
    assert verdict.min_accuracy == 0.99
    assert not verdict.passed


def test_a_runtime_divergence_fails_on_agreement(tmp_path: Path, model_dir: Path) -> None:
    """True labels are known for only part of the build's predictions: a runtime that reproduces the
    accuracy but not the build's labels (packaging or library drift) still fails, on agreement."""
    events = [
        GoldenEvent(e.id, e.fields, e.label, "d" if e.label == "a" else "a") if i % 4 == 0 else e
        for i, e in enumerate(_events())
    ]
    golden = load_golden(tmp_path, _package(tmp_path, model_dir, events, min_accuracy=0.5, min_agreement=0.9))
    truth = _truth(events)
    verdict = evaluate_golden(golden, lambda batch: [truth[f["text"]] for f in batch])
    assert verdict.accuracy == 1.0
    assert verdict.agreement == pytest.approx(0.75)
    assert not verdict.passed
    assert "agreement" in verdict.reasons[0]


def test_replays_in_the_builds_batch_size(tmp_path: Path, model_dir: Path) -> None:
    events = _events()
    golden = load_golden(tmp_path, _package(tmp_path, model_dir, events, runs=7))
    sizes: list[int] = []
    truth = _truth(events)

    def classify(batch: Sequence[Mapping[str, str]]) -> list[str]:
        sizes.append(len(batch))
        return [truth[f["text"]] for f in batch]

    evaluate_golden(golden, classify)
    assert sizes == [7, 7, 6]


def test_a_classifier_that_drops_labels_is_an_error(tmp_path: Path, model_dir: Path) -> None:
    golden = load_golden(tmp_path, _package(tmp_path, model_dir, _events()))
    with pytest.raises(ValueError, match="labels for"):
        evaluate_golden(golden, lambda batch: ["a"])


def test_a_tampered_golden_file_is_refused(tmp_path: Path, model_dir: Path) -> None:
    events = _events()
    manifest = _package(tmp_path, model_dir, events)
    path = tmp_path / GOLDEN_FILE
    path.write_bytes(path.read_bytes().replace(b'"label": "a"', b'"label": "b"'))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_golden(tmp_path, manifest)


def test_a_package_without_a_golden_set_is_refused(tmp_path: Path, model_dir: Path) -> None:
    manifest = load_manifest(model_dir).model_copy(update={"golden": None})
    with pytest.raises(ModelIntegrityError, match="no golden set"):
        load_golden(tmp_path, manifest)


def test_labels_outside_the_classes_and_wrong_counts_are_refused(tmp_path: Path, model_dir: Path) -> None:
    events = [*_events(1), GoldenEvent("x", {"text": "x"}, "not-a-class", "a")]
    with pytest.raises(ManifestError, match="not one of the model's classes"):
        load_golden(tmp_path, _package(tmp_path, model_dir, events))
    manifest = _package(tmp_path, model_dir, _events(1))
    spec = manifest.golden
    assert spec is not None
    short = manifest.model_copy(update={"golden": spec.model_copy(update={"n_events": 5})})
    with pytest.raises(ManifestError, match="holds 4 events"):
        load_golden(tmp_path, short)
