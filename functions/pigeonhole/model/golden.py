"""The golden set: a few hundred labelled held-out events shipped in the model package, and its verdict.

Shared by the pre-traffic hook (which replays the set through the NEW Lambda version before it gets
traffic) and the local canary rehearsal (which replays it through a candidate package). CDK-free and
boto3-free: the caller supplies a classifier callable, so one verdict rule serves both.

API (kept stable):

- ``load_golden(model_dir, manifest=None) -> GoldenSet``: read ``golden.jsonl`` after checking its size
  and sha256 against ``manifest.golden`` (as the model and vocabulary are); raise on any mismatch.
- ``Classify = Callable[[Sequence[Mapping[str, str]]], Sequence[str]]``: input fields of events → labels.
- ``runtime_classifier(runtime) -> Classify``: the in-process ONNX model as such a callable.
- ``evaluate_golden(golden, classify, min_accuracy_floor=0.0) -> GoldenVerdict``: replay in the build's
  batch size, count accuracy (vs TRUE labels) and agreement (vs the build's own int8 labels), and pass
  only if accuracy >= max(manifest min_accuracy, floor) and agreement >= manifest min_agreement.

Why true labels: a model trained on shuffled labels agrees perfectly with its own predictions, so a
threshold on self-agreement would wave it through; accuracy against the data's labels does not. The
floor is the deployer's (stack config), so a broken build cannot lower the bar through its manifest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pigeonhole.exceptions import ManifestError, ModelIntegrityError
from pigeonhole.model.manifest import GoldenSpec, Manifest, load_manifest, read_verified

if TYPE_CHECKING:
    from pigeonhole.model.runtime import ModelRuntime

Classify = Callable[[Sequence[Mapping[str, str]]], Sequence[str]]


@dataclass(frozen=True)
class GoldenEvent:
    """One held-out event: its model input fields, the data's true label, the build's int8 label."""

    id: str
    fields: Mapping[str, str]
    label: str
    predicted: str

    def to_json(self) -> str:
        return json.dumps(
            {"id": self.id, "fields": dict(self.fields), "label": self.label, "predicted": self.predicted},
            ensure_ascii=False,
            sort_keys=True,
        )


@dataclass(frozen=True)
class GoldenSet:
    spec: GoldenSpec
    events: tuple[GoldenEvent, ...]


@dataclass(frozen=True)
class GoldenVerdict:
    """The outcome of one replay; ``reasons`` says in words why it failed (empty when it passed)."""

    n_events: int
    accuracy: float
    agreement: float
    min_accuracy: float  # the bar applied: max(manifest, floor)
    min_agreement: float
    passed: bool
    reasons: tuple[str, ...] = ()
    wrong_by_class: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """For logs and the rehearsal's report: counts and rates only, never event text."""
        return {
            "n_events": self.n_events,
            "accuracy": round(self.accuracy, 6),
            "agreement": round(self.agreement, 6),
            "min_accuracy": self.min_accuracy,
            "min_agreement": self.min_agreement,
            "passed": self.passed,
            "reasons": list(self.reasons),
        }


def parse_golden_lines(data: bytes, spec: GoldenSpec, classes: Sequence[str]) -> tuple[GoldenEvent, ...]:
    """Parse JSON lines; every label must be one of the model's classes and the count must match the spec."""
    known = set(classes)
    events: list[GoldenEvent] = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            event = GoldenEvent(
                id=str(raw["id"]),
                fields={str(k): str(v) for k, v in raw["fields"].items()},
                label=str(raw["label"]),
                predicted=str(raw["predicted"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ManifestError(f"{spec.file} line {number} is not a golden event ({type(exc).__name__})") from None
        if event.label not in known or event.predicted not in known:
            raise ManifestError(f"{spec.file} line {number} names a label that is not one of the model's classes")
        events.append(event)
    if len(events) != spec.n_events:
        raise ManifestError(f"{spec.file} holds {len(events)} events but the manifest says {spec.n_events}")
    return tuple(events)


def load_golden(model_dir: Path, manifest: Manifest | None = None) -> GoldenSet:
    """The package's golden set, integrity-checked against the manifest. Raises if the package has none."""
    manifest = manifest if manifest is not None else load_manifest(model_dir)
    spec = manifest.golden
    if spec is None:
        raise ModelIntegrityError(
            f"model package {model_dir} ships no golden set: rebuild it (`make model`) so a deploy can check it"
        )
    data = read_verified(model_dir, spec)
    return GoldenSet(spec=spec, events=parse_golden_lines(data, spec, manifest.classes))


def runtime_classifier(runtime: ModelRuntime) -> Classify:
    """An in-process classifier: the manifest's input fields joined as the classifier joins them, then argmax."""
    spec = runtime.manifest.input
    classes = runtime.classes

    def classify(events: Sequence[Mapping[str, str]]) -> list[str]:
        texts = [spec.separator.join(e[f.name] for f in spec.fields) for e in events]
        probs = runtime.predict_proba(texts)
        return [classes[int(i)] for i in probs.argmax(axis=1)] if texts else []

    return classify


def evaluate_golden(golden: GoldenSet, classify: Classify, min_accuracy_floor: float = 0.0) -> GoldenVerdict:
    """Replay the set through ``classify`` in the build's batch size and judge it (see the module doc)."""
    spec = golden.spec
    events = golden.events
    labels: list[str] = []
    step = spec.scored_in_runs_of
    for start in range(0, len(events), step):
        chunk = events[start : start + step]
        answer = list(classify([e.fields for e in chunk]))
        if len(answer) != len(chunk):
            raise ValueError(f"classifier returned {len(answer)} labels for {len(chunk)} events")
        labels.extend(answer)
    n = len(events)
    correct = sum(1 for e, got in zip(events, labels, strict=True) if got == e.label)
    agreed = sum(1 for e, got in zip(events, labels, strict=True) if got == e.predicted)
    wrong: dict[str, int] = {}
    for e, got in zip(events, labels, strict=True):
        if got != e.label:
            wrong[e.label] = wrong.get(e.label, 0) + 1
    accuracy = correct / n if n else 0.0
    agreement = agreed / n if n else 0.0
    min_accuracy = max(spec.min_accuracy, min_accuracy_floor)
    reasons: list[str] = []
    if n == 0:
        reasons.append("the golden set is empty")
    if accuracy < min_accuracy:
        reasons.append(
            f"accuracy {accuracy:.4f} on {n} golden events is below {min_accuracy:.4f} "
            f"(max of manifest {spec.min_accuracy:.4f} and floor {min_accuracy_floor:.4f})"
        )
    if agreement < spec.min_agreement:
        reasons.append(
            f"agreement {agreement:.4f} with the build's own labels is below {spec.min_agreement:.4f}: "
            "the deployed runtime or package does not reproduce the build"
        )
    return GoldenVerdict(
        n_events=n,
        accuracy=accuracy,
        agreement=agreement,
        min_accuracy=min_accuracy,
        min_agreement=spec.min_agreement,
        passed=not reasons,
        reasons=tuple(reasons),
        wrong_by_class=wrong,
    )
