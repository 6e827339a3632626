"""The model manifest: the versioned contract between the model builder and the runtime."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pigeonhole.constants import MANIFEST_FILE
from pigeonhole.exceptions import ManifestError, ModelIntegrityError
from pigeonhole.model.unknown import HIDDEN_DISTANCE, OOV_SHARE, UNKNOWN_FEATURES

MANIFEST_SCHEMA_VERSION: Literal[1] = 1
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileRef(_Model):
    """A file of the package, pinned by content."""

    file: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    size_bytes: Annotated[int, Field(gt=0)]

    @field_validator("file")
    @classmethod
    def _bare_name(cls, value: str) -> str:
        """A bare file name inside the package folder: a path could make the runtime read any file."""
        if not value or value in (".", "..") or any(c in value for c in "/\\\0") or Path(value).name != value:
            raise ValueError(f"package file {value!r} must be a bare file name inside the package folder")
        return value


class InputField(_Model):
    name: str
    type: Literal["string"] = "string"
    min_chars: Annotated[int, Field(ge=0)] = 1
    max_chars: Annotated[int, Field(gt=0)] = 2000


class InputSpec(_Model):
    """Which event fields feed the model and how; the classifier validates events against it."""

    fields: Annotated[list[InputField], Field(min_length=1)]
    onnx_input: str = "text"
    onnx_probabilities_output: str = "probabilities"
    # The hidden-layer distance ([N, 1] float), when the graph emits it: an input of the unknown score.
    onnx_hidden_distance_output: str | None = None
    normalization: str
    separator: str = " "  # joins several fields into the one string the graph reads


class Thresholds(_Model):
    """Decision thresholds: below its class's threshold an event goes to human review.

    ``per_class`` (label -> threshold) overrides ``review_confidence`` for the classes where one shared
    threshold does not pay (a much harder class); ``selection`` records how the build chose them (the
    precision target, the measured coverage per class) for `pigeonhole model verify` and the docs.
    """

    review_confidence: Probability
    top_k: Annotated[int, Field(ge=1)] = 3
    per_class: dict[str, Probability] = {}
    selection: dict[str, object] = {}

    def for_label(self, label: str) -> float:
        """The confidence an event labelled `label` needs to be routed automatically."""
        return self.per_class.get(label, self.review_confidence)


class UnknownSpec(_Model):
    """The "none of the known classes" score: sigmoid(bias + weights . features) >= threshold -> review.

    Features are computed by ``pigeonhole.model.unknown`` (the build fits with the same code). ``target``
    states what the operating point was chosen for, ``evaluation`` what was measured there (free-form,
    written by the build, read by `pigeonhole model verify`).
    """

    features: Annotated[list[str], Field(min_length=1)]
    weights: list[float]
    bias: float
    threshold: Probability
    target: dict[str, object] = {}
    evaluation: dict[str, object] = {}

    @model_validator(mode="after")
    def _check(self) -> UnknownSpec:
        bad = [name for name in self.features if name not in UNKNOWN_FEATURES]
        if bad:
            raise ValueError(f"unknown.features {bad} are not computed by the runtime; known: {list(UNKNOWN_FEATURES)}")
        if len(set(self.features)) != len(self.features):
            raise ValueError("unknown.features must be unique")
        if len(self.weights) != len(self.features):
            raise ValueError(
                f"unknown.weights has {len(self.weights)} entries for {len(self.features)} features: one per feature"
            )
        if not all(math.isfinite(w) for w in [*self.weights, self.bias]):
            raise ValueError("unknown.weights and unknown.bias must be finite numbers")
        return self


class Histogram(_Model):
    """Counts over bins; edges has one more entry than counts. Outer bins are open-ended."""

    edges: list[float]
    counts: list[int]

    @model_validator(mode="after")
    def _check(self) -> Histogram:
        if len(self.edges) != len(self.counts) + 1:
            raise ValueError("a histogram needs len(edges) == len(counts) + 1")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("histogram edges must increase strictly")
        return self


class DriftBaseline(_Model):
    """Reference distributions measured on held-out data with the shipped (int8) model."""

    n_events: Annotated[int, Field(gt=0)]
    class_prior: list[Probability]
    confidence: Histogram
    features: dict[str, Histogram]
    unknown_rate: Probability | None = None  # share of held-out events the unknown score sends to review


class DriftThresholds(_Model):
    psi_warn: float = 0.1
    psi_page: float = 0.25
    js_distance: float = 0.1
    p_value: float = 0.05
    min_window_events: int = 200


class DataFingerprint(_Model):
    """Which data trained and evaluated the model."""

    train_sha256: str
    train_rows: int
    eval_sha256: str
    eval_rows: int
    text_column: str
    label_column: str
    source: str


class GoldenSpec(FileRef):
    """The golden set shipped in the package (JSON lines; see pigeonhole.model.golden).

    ``label`` of every golden event is the data's TRUE label, so ``min_accuracy`` judges the candidate
    against the world, not against itself: a model trained on shuffled labels agrees perfectly with its
    own predictions but scores near chance here. A deploy uses max(min_accuracy, the stack's floor), so a
    broken build cannot lower the bar by writing a low number into its own manifest.
    """

    n_events: Annotated[int, Field(gt=0)]
    n_classes: Annotated[int, Field(gt=0)]
    source: str  # which held-out data the events were drawn from
    accuracy_int8: Probability  # the shipped int8 graph on these events, at build time
    min_accuracy: Probability  # candidate labels vs true labels must reach this (floored by the stack)
    min_agreement: Probability  # candidate labels vs the build's own int8 labels (runtime/packaging divergence)
    scored_in_runs_of: Annotated[int, Field(gt=0)] = 10  # batch size the build scored with (int8 is batch-sensitive)


class Manifest(_Model):
    schema_version: Literal[1] = MANIFEST_SCHEMA_VERSION
    name: str
    version: str
    created_at: str
    model: FileRef
    vocabulary: FileRef | None = None  # one word a line; used for the out-of-vocabulary drift feature
    classes: Annotated[list[str], Field(min_length=2)]
    input: InputSpec
    thresholds: Thresholds
    unknown: UnknownSpec | None = None  # absent: no unknown route (older packages)
    drift_baseline: DriftBaseline
    drift_thresholds: DriftThresholds = DriftThresholds()
    training_data: DataFingerprint
    golden: GoldenSpec | None = None  # labelled held-out events the pre-traffic hook replays
    metrics: dict[str, object]  # evaluation report (fp32, int8, agreement, sizes, latency)
    build: dict[str, object] = {}  # how it was built: command, library versions, parameters

    @model_validator(mode="after")
    def _check(self) -> Manifest:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be unique")
        if len(self.drift_baseline.class_prior) != len(self.classes):
            raise ValueError("drift_baseline.class_prior needs one entry per class")
        if self.thresholds.top_k > len(self.classes):
            raise ValueError("thresholds.top_k exceeds the number of classes")
        strangers = sorted(set(self.thresholds.per_class) - set(self.classes))
        if strangers:
            raise ValueError(f"thresholds.per_class names labels that are not classes: {strangers}")
        if self.unknown is not None and OOV_SHARE in self.unknown.features and self.vocabulary is None:
            raise ValueError("unknown.features uses oov_share but the package has no vocabulary")
        if (
            self.unknown is not None
            and HIDDEN_DISTANCE in self.unknown.features
            and self.input.onnx_hidden_distance_output is None
        ):
            raise ValueError(
                "unknown.features uses hidden_distance but input.onnx_hidden_distance_output names no output"
            )
        return self

    def dump(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=False) + "\n"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(model_dir: Path) -> Manifest:
    path = model_dir / MANIFEST_FILE
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read model manifest {path}: {exc}") from exc
    try:
        return Manifest.model_validate_json(raw)
    except ValidationError as exc:
        raise ManifestError(f"invalid model manifest {path}: {exc}") from exc


def read_verified(model_dir: Path, ref: FileRef) -> bytes:
    """Read a package file once and check its size and sha256 against the manifest; raise on mismatch.

    The caller uses the returned bytes, so the file cannot change between the check and the load.
    """
    path = model_dir / ref.file
    if not path.resolve().is_relative_to(model_dir.resolve()):
        raise ModelIntegrityError(f"{ref.file!r} resolves outside the package folder {model_dir}: refusing to load it")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelIntegrityError(f"{path} is listed in the manifest but cannot be read: {exc}") from exc
    if len(data) != ref.size_bytes:
        raise ModelIntegrityError(
            f"{path} is {len(data)} bytes but the manifest says {ref.size_bytes}: refusing to load a tampered model"
        )
    actual = hashlib.sha256(data).hexdigest()
    if actual != ref.sha256:
        raise ModelIntegrityError(
            f"{path} has sha256 {actual} but the manifest says {ref.sha256}: refusing to load a tampered model"
        )
    return data
