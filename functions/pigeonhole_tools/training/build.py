"""`pigeonhole model build`: data -> trained recipe -> ONNX fp32 -> int8 -> gates -> package.

Splits (all stratified, seeded):
  eval        --eval-data, or a held-out share of --data; measures fp32 and int8, feeds the drift baseline
  validation  carved from the training rows, never from eval; chooses the review threshold
  fit         the rest of the training rows

Two trainings by default: a model fit without the validation rows (its int8 graph scores them to
choose the review threshold), then, with --refit, the shipped model on all training rows with the
same recipe and seed, because on BANKING77 the 10 % held out for the threshold cost about 0.4 points
of accuracy. The eval report shows what the threshold does with the shipped model. --no-refit
ships the first model (one training, the threshold then comes from the shipped model itself).

Gates (the package is refused, nothing written to --out): int8 not dominating the weight bytes, an int8
graph over --max-model-mb (checked on the first model already), int8 accuracy more than
--max-accuracy-drop below fp32, or a staged package that fails to load or reproduce its probabilities.
"""

from __future__ import annotations

import platform
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from pigeonhole.constants import MODEL_FILE
from pigeonhole.model.features import NORMALIZATION, normalize_batch
from pigeonhole.model.manifest import DataFingerprint, DriftBaseline, InputField, InputSpec, Manifest, Thresholds
from pigeonhole_tools.training import baseline as baseline_mod
from pigeonhole_tools.training import (
    decide,
    evaluate,
    golden,
    graphs,
    hidden,
    package,
    quantize,
    routes,
    unknown_route,
)
from pigeonhole_tools.training import defaults as d
from pigeonhole_tools.training.data import LabelledData, load_labelled, stratified_split, take
from pigeonhole_tools.training.errors import BuildRefusedError, DataError
from pigeonhole_tools.training.fingerprint import library_versions, platform_fingerprint
from pigeonhole_tools.training.progress import Reporter
from pigeonhole_tools.training.train import TrainedModel, TrainParams, train

SELF_CHECK_EVENTS = 100  # a multiple of the scoring batch, so the runs have the same composition


@dataclass(frozen=True)
class BuildOptions:
    """Everything a build depends on; recorded in the manifest so the build can be repeated."""

    data: Path
    name: str
    version: str
    out: Path
    text_column: str = "text"
    label_column: str = "category"
    eval_data: Path | None = None
    params: TrainParams = field(default_factory=TrainParams)
    eval_fraction: float = d.EVAL_FRACTION
    validation_fraction: float = d.VALIDATION_FRACTION
    max_accuracy_drop: float = d.MAX_ACCURACY_DROP
    target_auto_precision: float = d.TARGET_AUTO_PRECISION
    min_int8_share: float = d.MIN_INT8_SHARE
    max_model_mb: float = d.MAX_MODEL_MB
    threads: int = d.THREADS
    latency_repeats: int = d.LATENCY_REPEATS
    input_field: str = d.INPUT_FIELD
    max_chars: int = d.MAX_CHARS
    top_k: int = d.TOP_K
    opset: int = d.OPSET
    refit: bool = d.REFIT
    calibrate: bool = d.CALIBRATE
    unknown_holdout_share: float = d.UNKNOWN_HOLDOUT_SHARE
    unknown_target_known_share: float = d.UNKNOWN_TARGET_KNOWN_SHARE
    unknown_features: tuple[str, ...] | None = None  # None: routes.UNKNOWN_FEATURES
    per_class_correction: str = d.PER_CLASS_CORRECTION
    command: str = ""


@dataclass(frozen=True)
class Splits:
    train_texts: list[str]  # normalized, for scikit-learn
    train_labels: list[str]
    validation_texts: list[str]  # raw: scored through run_probabilities, which normalizes
    validation_labels: list[str]
    eval_texts: list[str]  # raw
    eval_labels: list[str]
    train_file: LabelledData
    eval_file: LabelledData | None


def _float(value: object) -> float:
    if not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def make_splits(opts: BuildOptions, ui: Reporter) -> Splits:
    """Read the data and carve eval (if not given) and validation, both stratified and seeded."""
    seed = opts.params.seed
    train_file = load_labelled(opts.data, opts.text_column, opts.label_column)
    texts, labels = train_file.texts, train_file.labels
    eval_file: LabelledData | None = None
    if opts.eval_data is not None:
        eval_file = load_labelled(opts.eval_data, opts.text_column, opts.label_column)
        eval_texts, eval_labels = eval_file.texts, eval_file.labels
    else:
        kept, held = stratified_split(labels, opts.eval_fraction, seed)
        eval_texts, eval_labels = take(texts, held), take(labels, held)
        texts, labels = take(texts, kept), take(labels, kept)
    kept, val = stratified_split(labels, opts.validation_fraction, seed + 1)
    split = Splits(
        train_texts=normalize_batch(take(texts, kept)),
        train_labels=take(labels, kept),
        validation_texts=take(texts, val),
        validation_labels=take(labels, val),
        eval_texts=eval_texts,
        eval_labels=eval_labels,
        train_file=train_file,
        eval_file=eval_file,
    )
    unknown = sorted(set(split.eval_labels) - set(split.train_labels))
    if unknown:
        raise DataError(f"the eval data has labels the training data lacks: {unknown[:10]}")
    ui.info(
        f"rows: {len(split.train_texts)} train, {len(split.validation_texts)} validation (threshold), "
        f"{len(split.eval_texts)} eval; {len(set(split.train_labels))} classes"
    )
    return split


def _indices(labels: list[str], classes: list[str]) -> NDArray[np.int64]:
    index = {c: i for i, c in enumerate(classes)}
    return np.asarray([index[label] for label in labels], dtype=np.int64)


def _export(
    model: TrainedModel, spec: InputSpec, opts: BuildOptions, directory: Path, temperature: float | None = None
) -> graphs.Graphs:
    return graphs.export_and_quantize(model, spec, opts.opset, opts.min_int8_share, directory, temperature)


def _build_info(opts: BuildOptions, model: TrainedModel, split: Splits) -> dict[str, object]:
    return {
        "command": opts.command,
        "libraries": library_versions(),
        "platform": platform.platform(),
        "platform_fingerprint": platform_fingerprint(),
        "seed": opts.params.seed,
        "parameters": {
            **opts.params.as_dict(),
            "n_features": model.n_features,
            "eval_fraction": None if opts.eval_data else opts.eval_fraction,
            "validation_fraction": opts.validation_fraction,
            "refit": opts.refit,
            "max_accuracy_drop": opts.max_accuracy_drop,
            "target_auto_precision": opts.target_auto_precision,
            "min_int8_share": opts.min_int8_share,
            "max_model_mb": opts.max_model_mb,
            "opset": opts.opset,
            "threads": opts.threads,
            "featurizer": "FeatureUnion(tfidf word n-grams token_pattern=\\b\\w+\\b, tfidf char n-grams), "
            "lowercase=False (normalize_text lower-cases in Python)",
            "classifier": "MLPClassifier(relu, adam), one partial_fit per epoch, seeded shuffle",
            "quantization": "onnxruntime.quantization.quantize_dynamic QInt8, no pre-processing",
        },
        "data": {
            "train": split.train_file.fingerprint(),
            "eval": split.eval_file.fingerprint() if split.eval_file else None,
            "rows_used": {
                "fit": len(split.train_texts),
                "validation": len(split.validation_texts),
                "shipped_model_trained_on": len(split.train_texts) + (len(split.validation_texts) if opts.refit else 0),
                "eval": len(split.eval_texts),
            },
        },
    }


def _training_record(model: TrainedModel) -> dict[str, object]:
    return {
        "seconds": round(model.seconds, 2),
        "rows": model.rows,
        "n_features": model.n_features,
        "epochs": [
            {
                "epoch": r.epoch,
                "loss": round(r.loss, 6),
                "validation_accuracy": r.monitor_accuracy,
                "seconds": round(r.seconds, 2),
            }
            for r in model.history
        ],
    }


def _train(
    texts: list[str], labels: list[str], opts: BuildOptions, ui: Reporter, title: str, monitor: Splits | None
) -> TrainedModel:
    with ui.epochs(opts.params.epochs, title) as on_epoch:
        watch = None if monitor is None else (normalize_batch(monitor.validation_texts), monitor.validation_labels)
        model = train(texts, labels, opts.params, monitor=watch, on_epoch=on_epoch)
    ui.info(f"{title}: {model.rows} rows, {model.n_features} features, {model.seconds:.1f} s")
    return model


def _write_manifest_and_golden(manifest: Manifest, staging: Path, opts: BuildOptions, split: Splits) -> Manifest:
    """Write the manifest, then the golden set drawn from the eval rows (it rewrites the manifest)."""
    package.write_manifest(manifest, staging)
    source = str(opts.eval_data) if opts.eval_data else f"held-out share of {opts.data}"
    return golden.add_golden(staging, split.eval_texts, split.eval_labels, source=source, seed=opts.params.seed)


def _get(tree: object, *path: str) -> float:
    for key in path:
        tree = tree[key] if isinstance(tree, dict) else None
    return _float(tree)


def _validation_decisions(
    split: Splits, spec: InputSpec, opts: BuildOptions, ui: Reporter, directory: Path
) -> tuple[TrainedModel, decide.Decisions]:
    """Train without the validation rows; its int8 scores of them fit T, then choose the thresholds."""
    held_out_model = _train(split.train_texts, split.train_labels, opts, ui, "training (validation held out)", split)
    with ui.step("Exporting to ONNX and quantizing to int8"):
        held_out = _export(held_out_model, spec, opts, directory)
        quantize.check_size(held_out.int8, opts.max_model_mb, held_out_model.n_features, "held-out model")
    with ui.step("Calibrating and choosing the review thresholds on the validation rows"):
        p_val_raw, _ = graphs.score_int8(held_out, split.validation_texts, spec, opts.threads)
        y_val = _indices(split.validation_labels, held_out_model.classes)
        decisions, _ = decide.decide(
            p_val_raw,
            y_val,
            held_out_model.classes,
            opts.target_auto_precision,
            opts.calibrate,
            opts.per_class_correction,
        )
    ui.info(decide.calibration_summary(decisions))
    if not decisions.review.reached_target:
        ui.warn(
            f"no threshold reaches auto-routed accuracy {opts.target_auto_precision} on validation: "
            "every event goes to review (threshold 1.0)"
        )
    return held_out_model, decisions


def _routing_records(
    decisions: decide.Decisions,
    unknown_fit: routes.UnknownFit | None,
    unknown_record: dict[str, object],
    split: Splits,
    classes: list[str],
    scored: graphs.Scored,
    vocabulary: frozenset[str],
    opts: BuildOptions,
) -> tuple[dict[str, object], dict[str, object]]:
    """Calibration and per-class records on eval; the unknown record gains the eval routing (in place)."""
    y_eval = _indices(split.eval_labels, classes)
    calibration = decide.calibration_record(
        decisions.temperature, decisions, scored.fp32, scored.int8, y_eval, opts.refit
    )
    per_class = decide.per_class_record(decisions, classes, opts.target_auto_precision, scored.int8, y_eval)
    if unknown_fit is not None:
        picked = {c.label: c.threshold for c in decisions.per_class}
        vector = decide.class_threshold_vector(classes, decisions.review.threshold, picked)
        unknown_record["eval"] = unknown_route.on_eval(
            unknown_fit, scored.int8, y_eval, split.eval_texts, vocabulary, vector, scored.int8_distance
        )
    return calibration, per_class


def _drift_baseline(
    split: Splits, scored: graphs.Scored, vocabulary: frozenset[str], n_classes: int, unknown_record: dict[str, object]
) -> DriftBaseline:
    """The int8 eval-set baseline, with the share the unknown score routes away when there is one."""
    drift = baseline_mod.drift_baseline(normalize_batch(split.eval_texts), scored.int8, vocabulary, n_classes)
    if unknown_record.get("fitted"):
        drift = drift.model_copy(update={"unknown_rate": _get(unknown_record, "eval", "share_unknown")})
    return drift


def run_build(opts: BuildOptions, ui: Reporter | None = None) -> Manifest:
    """Build, gate and install a package into opts.out; raise DataError / BuildRefusedError otherwise."""
    ui = ui or Reporter()
    with ui.step("Reading and splitting the data"):
        split = make_splits(opts, ui)
    spec = InputSpec(
        fields=[InputField(name=opts.input_field, max_chars=opts.max_chars)],
        normalization=NORMALIZATION,
        onnx_hidden_distance_output=hidden.OUTPUT,
    )

    with tempfile.TemporaryDirectory(prefix="pigeonhole-build-") as scratch_name:
        scratch = Path(scratch_name)
        # 1. A model that never sees the validation rows fits the temperature and chooses the thresholds.
        held_out_model, decisions = _validation_decisions(split, spec, opts, ui, scratch / "held-out")
        choice, temperature = decisions.review, decisions.temperature
        # 2. The unknown score, from a model that never saw some intents (a third training).
        unknown_fit, unknown_record = unknown_route.fit(
            split,
            opts.unknown_holdout_share,
            opts.unknown_target_known_share,
            opts.unknown_features,
            opts.params.seed + 2,
            opts.calibrate,
            lambda texts, labels, title: _train(texts, labels, opts, ui, title, None),
            lambda m, where, texts: graphs.score_int8(_export(m, spec, opts, where), texts, spec, opts.threads),
            scratch / "unknown",
            ui,
        )
        # 3. With --refit (default) the shipped model learns from every training row, validation included.
        if opts.refit:
            all_texts = split.train_texts + normalize_batch(split.validation_texts)
            all_labels = split.train_labels + split.validation_labels
            shipped_model = _train(all_texts, all_labels, opts, ui, "training (all training rows)", None)
        else:
            shipped_model = held_out_model
        with ui.step("Exporting to ONNX (calibrated) and quantizing to int8"):
            shipped = _export(
                shipped_model, spec, opts, scratch / "shipped", temperature if temperature != 1.0 else None
            )
        model, classes = shipped.model, shipped.model.classes
        size = quantize.check_size(shipped.int8, opts.max_model_mb, model.n_features, "shipped model")
        ui.info(f"int8 holds {shipped.weights.int8_share:.1%} of the initializer bytes; {quantize.size_summary(size)}")

        with ui.step("Evaluating fp32 and int8 through the runtime path"):
            scored = graphs.score(shipped, split.eval_texts, split.eval_labels, spec, opts.threads, temperature)
        acc_fp32, acc_int8 = _float(scored.metrics_fp32["accuracy"]), _float(scored.metrics_int8["accuracy"])
        ui.info(f"eval accuracy fp32 {acc_fp32:.4f}, int8 {acc_int8:.4f} (drop {scored.accuracy_drop:+.4f})")
        if scored.accuracy_drop > opts.max_accuracy_drop:
            raise BuildRefusedError(
                f"int8 accuracy {acc_int8:.4f} is {scored.accuracy_drop:.4f} below fp32 {acc_fp32:.4f}, more than "
                f"--max-accuracy-drop {opts.max_accuracy_drop}: not packaging this model"
            )
        threshold = decide.threshold_record(
            choice, _indices(split.eval_labels, classes), scored.int8, opts.refit, opts.target_auto_precision
        )
        vocabulary = model.unigram_vocabulary()
        calibration, per_class = _routing_records(
            decisions, unknown_fit, unknown_record, split, classes, scored, frozenset(vocabulary), opts
        )
        ui.info(
            f"eval ECE int8 {_get(calibration, 'eval', 'int8', 'before', 'ece_15'):.4f} -> "
            f"{_get(calibration, 'eval', 'int8', 'after', 'ece_15'):.4f} (T = {temperature:.4f})"
        )
        ui.info(f"review threshold {choice.threshold:.4f} ({decide.routing_summary(threshold)})")
        with ui.step("Measuring latency (1 thread, median)"):
            latency = graphs.latency(shipped.fp32, shipped.int8, split.eval_texts, spec, opts.latency_repeats)
        with ui.step("Computing the drift baseline (int8, eval set)"):
            drift = _drift_baseline(split, scored, frozenset(vocabulary), len(classes), unknown_record)

        fp32_size, int8_size = shipped.fp32.stat().st_size, shipped.int8.stat().st_size
        metrics: dict[str, object] = {
            "eval_set": {
                "source": str(opts.eval_data) if opts.eval_data else f"{opts.data} (stratified hold-out)",
                "n_events": len(split.eval_texts),
            },
            "fp32": {**scored.metrics_fp32, "size_bytes": fp32_size},
            "int8": {**scored.metrics_int8, "size_bytes": int8_size},
            "accuracy_drop": scored.accuracy_drop,
            "max_accuracy_drop": opts.max_accuracy_drop,
            "fp32_vs_int8": evaluate.agreement(scored.fp32, scored.int8),
            "sklearn_vs_onnx_fp32": evaluate.agreement(scored.sklearn, scored.fp32),
            "scored_in_runs_of": evaluate.EVAL_BATCH,
            "int8_alone_vs_in_batch": scored.int8_alone_vs_in_batch,
            "sizes": {"fp32_bytes": fp32_size, "int8_bytes": int8_size, "int8_to_fp32": int8_size / fp32_size},
            "size_budget": size,
            "quantization": {"weight_type": "QInt8", "method": "dynamic", **shipped.weights.as_dict()},
            "latency": latency,
            "review_threshold": threshold,
            "calibration": calibration,
            "per_class_thresholds": per_class,
            "unknown": unknown_record,
            "training": {
                "shipped_model": _training_record(model),
                "threshold_model": _training_record(held_out_model) if opts.refit else "same as shipped_model",
                "unknown_model": unknown_record.get("training", "not trained"),
            },
        }
        fingerprint = DataFingerprint(
            train_sha256=split.train_file.sha256,
            train_rows=split.train_file.rows,
            eval_sha256=split.eval_file.sha256 if split.eval_file else split.train_file.sha256,
            eval_rows=len(split.eval_texts),
            text_column=opts.text_column,
            label_column=opts.label_column,
            source=str(opts.data),
        )

        with ui.step("Writing and self-checking the package"):
            staging = scratch / "package"
            staging.mkdir()
            (staging / MODEL_FILE).write_bytes(shipped.int8.read_bytes())
            manifest = Manifest(
                name=opts.name,
                version=opts.version,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                model=package.file_ref(staging / MODEL_FILE),
                vocabulary=package.write_vocabulary(vocabulary, staging / package.VOCAB_FILE),
                classes=classes,
                input=spec,
                thresholds=Thresholds(
                    review_confidence=choice.threshold,
                    top_k=min(opts.top_k, len(classes)),
                    per_class={c.label: c.threshold for c in decisions.per_class},
                    selection=decide.selection_record(per_class),
                ),
                unknown=None if unknown_fit is None else unknown_route.spec(unknown_fit, unknown_record),
                drift_baseline=drift,
                training_data=fingerprint,
                metrics=metrics,
                build=_build_info(opts, model, split),
            )
            manifest = _write_manifest_and_golden(manifest, staging, opts, split)
            n_check = min(SELF_CHECK_EVENTS, len(split.eval_texts))
            check = (split.eval_texts[:n_check], scored.int8[:n_check], evaluate.EVAL_BATCH)
            package.self_check(staging, *check)
            package.install(staging, opts.out)
            package.self_check(opts.out, *check)
    return manifest
