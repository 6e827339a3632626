"""The build command end to end on tiny synthetic data: the package, determinism and every refusal gate."""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from pigeonhole.constants import GOLDEN_FILE, MANIFEST_FILE, MODEL_FILE
from pigeonhole.exceptions import ManifestError, ModelIntegrityError
from pigeonhole.model.golden import evaluate_golden, load_golden, runtime_classifier
from pigeonhole.model.manifest import FileRef, load_manifest, sha256_file
from pigeonhole.model.runtime import ModelRuntime
from pigeonhole_tools.training import package, quantize
from pigeonhole_tools.training.build import platform_fingerprint
from pigeonhole_tools.training.cli import EXIT_DATA_ERROR, EXIT_REFUSED, model_app

_TOPICS = {
    "card_lost": ["lost", "stolen", "missing", "thief"],
    "exchange": ["rate", "currency", "euros", "conversion"],
    "top_up": ["topup", "reload", "deposit", "add funds"],
    "transfer": ["transfer", "wire", "send", "recipient"],
    "pin": ["pin", "code", "blocked", "unlock"],
}
_FILLER = ["please", "help", "my", "the", "today", "urgent", "hi", "account", "card", "why", "is", "can you"]


def _rows(n_per_class: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for label, keywords in _TOPICS.items():
        for _ in range(n_per_class):
            words = [*rng.sample(_FILLER, 3), *rng.sample(keywords, 2)]
            rng.shuffle(words)
            text = " ".join(words)
            rows.append({"text": text.upper() if rng.random() < 0.2 else text, "category": label})
    rng.shuffle(rows)
    return rows


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("synthetic")
    for name, rows in (("train.csv", _rows(60, 1)), ("test.csv", _rows(20, 2))):
        with (directory / name).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, ["text", "category"])
            writer.writeheader()
            writer.writerows(rows)
    with (directory / "all.jsonl").open("w", encoding="utf-8") as fh:
        for row in _rows(60, 3):
            fh.write(json.dumps({"utterance": row["text"], "intent": row["category"]}) + "\n")
    return directory


def _args(data_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "build",
        "--data",
        str(data_dir / "train.csv"),
        "--eval-data",
        str(data_dir / "test.csv"),
        "--name",
        "synthetic",
        "--version",
        "0.1.0",
        "--out",
        str(out),
        "--epochs",
        "25",
        "--hidden",
        "16",
        "--batch-size",
        "32",
        "--latency-repeats",
        "5",
        "--target-auto-precision",
        "0.9",
        *extra,
    ]


def _invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(model_app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def built(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("package") / "model"
    code, output = _invoke(_args(data_dir, out))
    assert code == 0, output
    return out, output


def test_the_package_has_exactly_its_files_and_loads(built: tuple[Path, str]) -> None:
    out, _ = built
    assert sorted(p.name for p in out.iterdir()) == sorted([MODEL_FILE, MANIFEST_FILE, package.VOCAB_FILE, GOLDEN_FILE])
    runtime = ModelRuntime.load(out)
    probs = runtime.predict_proba(["my card was STOLEN   please help", "what is the euros rate"])
    assert [runtime.classes[i] for i in probs.argmax(axis=1)] == ["card_lost", "exchange"]


def test_the_golden_set_holds_true_labels_of_every_class_from_the_eval_rows(built: tuple[Path, str]) -> None:
    """Stratified held-out events with the data's labels; the package passes its own replay."""
    out, _ = built
    manifest = load_manifest(out)
    golden = load_golden(out, manifest)
    spec = golden.spec
    assert spec.n_classes == len(manifest.classes)
    assert spec.n_events == len(golden.events) == 4 * len(manifest.classes)  # 20 eval rows a class, 4 drawn
    assert spec.source.endswith("test.csv")
    assert {e.label for e in golden.events} == set(manifest.classes)
    assert spec.min_accuracy <= spec.accuracy_int8
    assert spec.min_accuracy == pytest.approx(max(0.0, spec.accuracy_int8 - 0.05), abs=1e-3)
    runtime = ModelRuntime.load(out)
    verdict = evaluate_golden(golden, runtime_classifier(runtime))
    assert verdict.passed
    assert verdict.agreement == 1.0  # the same package and runtime reproduce the build's labels
    assert verdict.accuracy == pytest.approx(spec.accuracy_int8)


def test_the_manifest_records_what_the_contract_needs(built: tuple[Path, str], data_dir: Path) -> None:
    out, _ = built
    manifest = load_manifest(out)
    assert manifest.classes == sorted(_TOPICS)
    assert manifest.model.sha256 == sha256_file(out / MODEL_FILE)
    assert manifest.vocabulary is not None
    assert manifest.vocabulary.sha256 == sha256_file(out / package.VOCAB_FILE)
    vocab = (out / package.VOCAB_FILE).read_text(encoding="utf-8").splitlines()
    assert vocab == sorted(vocab)
    assert "stolen" in vocab
    assert all(" " not in w and w == w.lower() for w in vocab)  # unigrams of normalized text
    assert manifest.input.onnx_input == "text"
    assert manifest.input.onnx_probabilities_output == "probabilities"
    assert manifest.input.fields[0].name == "text"
    assert 0.0 < manifest.thresholds.review_confidence <= 1.0
    # What decides the float bits besides library versions, so a byte comparison knows when it applies.
    assert manifest.build["platform_fingerprint"] == platform_fingerprint()

    fingerprint = manifest.training_data
    assert fingerprint.train_sha256 == sha256_file(data_dir / "train.csv")
    assert fingerprint.eval_sha256 == sha256_file(data_dir / "test.csv")
    assert (fingerprint.train_rows, fingerprint.eval_rows) == (300, 100)
    assert fingerprint.source == str(data_dir / "train.csv")

    baseline = manifest.drift_baseline
    assert baseline.n_events == 100
    assert sum(baseline.confidence.counts) == 100
    assert set(baseline.features) == {"length_chars", "tokens", "oov_share"}

    metrics = manifest.metrics
    for key in ("fp32", "int8", "fp32_vs_int8", "sklearn_vs_onnx_fp32", "sizes", "quantization", "latency"):
        assert key in metrics, key
    int8 = metrics["int8"]
    assert isinstance(int8, dict)
    assert int8["accuracy"] >= 0.9
    assert set(int8["per_class"]) == set(_TOPICS)
    assert 0.0 <= int8["ece_15"] <= 1.0
    quant = metrics["quantization"]
    assert isinstance(quant, dict)
    assert quant["int8_share"] > 0.5
    latency = metrics["latency"]
    assert isinstance(latency, dict)
    assert latency["threads"] == 1
    assert set(latency["int8"]) == {"single_event_ms", "batch_of_10_ms", "repeats"}
    sklearn_parity = metrics["sklearn_vs_onnx_fp32"]
    assert isinstance(sklearn_parity, dict)
    assert sklearn_parity["top1_agreement"] == 1.0  # no train/serve skew: same normalization both sides
    assert sklearn_parity["max_abs_prob_diff"] < 1e-3  # the temperature applied on both sides

    build = manifest.build
    assert str(build["command"]).startswith("pigeonhole model build --data ")
    assert "--epochs 25" in str(build["command"])
    assert build["seed"] == 0
    libraries = build["libraries"]
    assert isinstance(libraries, dict)
    assert {"scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy"} <= set(libraries)


def test_the_package_is_calibrated_inside_the_graph_and_records_its_routing_numbers(built: tuple[Path, str]) -> None:
    out, _ = built
    manifest = load_manifest(out)
    graph = onnx.load(str(out / MODEL_FILE))
    (mul,) = [n for n in graph.graph.node if n.name == "pigeonhole_temperature"]
    softmax = next(n for n in graph.graph.node if n.op_type == "Softmax")
    assert softmax.input[0] == mul.output[0]  # logits / T feed the final softmax
    calibration = manifest.metrics["calibration"]
    assert isinstance(calibration, dict)
    temperature = calibration["temperature"]
    inverse = next(i for i in graph.graph.initializer if i.name == mul.input[1])
    assert float(numpy_helper.to_array(inverse)) == pytest.approx(1.0 / temperature, rel=1e-6)
    for kind in ("fp32", "int8"):
        before, after = calibration["eval"][kind]["before"], calibration["eval"][kind]["after"]
        assert before["accuracy"] == after["accuracy"]  # temperature never changes a label
        assert set(after) == {"ece_15", "brier", "nll", "accuracy"}
    per_class = manifest.metrics["per_class_thresholds"]
    assert isinstance(per_class, dict)
    assert per_class["target_auto_precision"] == 0.9
    assert set(per_class["thresholds"]) <= set(manifest.classes)
    unknown = manifest.metrics["unknown"]
    assert isinstance(unknown, dict)
    assert unknown["fitted"] is True
    assert unknown["features"] == ["max_prob", "hidden_distance", "oov_share"]
    assert len(unknown["weights"]) == 3
    assert unknown["fitted_on"]["hidden_distance"]["dims"] >= 1
    assert len(unknown["fitted_on"]["left_out_intents"]) == 1  # round(0.13 * 5)
    assert unknown["evaluation"]["fitting_rows"]["known_share_unknown"] <= 0.05
    assert 0.0 <= unknown["eval"]["share_unknown"] <= 1.0
    # The typed blocks the runtime applies carry the same numbers.
    assert manifest.unknown is not None
    assert manifest.unknown.weights == unknown["weights"]
    assert manifest.unknown.threshold == unknown["threshold"]
    assert manifest.unknown.target["max_known_share_unknown"] == 0.05
    assert manifest.drift_baseline.unknown_rate == unknown["eval"]["share_unknown"]
    assert manifest.thresholds.per_class == per_class["thresholds"]
    assert manifest.thresholds.selection["target_auto_precision"] == 0.9


def test_progress_and_summary_are_printed(built: tuple[Path, str]) -> None:
    _, output = built
    assert "training" in output
    assert "25/25" in output
    assert "quantizing to int8" in output
    assert "top-1 agreement fp32/int8" in output


def test_the_same_seed_builds_the_same_bytes(built: tuple[Path, str], data_dir: Path, tmp_path: Path) -> None:
    first, _ = built
    code, output = _invoke(_args(data_dir, tmp_path / "again"))
    assert code == 0, output
    assert sha256_file(tmp_path / "again" / MODEL_FILE) == sha256_file(first / MODEL_FILE)
    assert sha256_file(tmp_path / "again" / package.VOCAB_FILE) == sha256_file(first / package.VOCAB_FILE)
    assert load_manifest(tmp_path / "again").thresholds == load_manifest(first).thresholds


def test_jsonl_without_eval_data_holds_out_a_stratified_share(data_dir: Path, tmp_path: Path) -> None:
    args = _args(data_dir, tmp_path / "out")
    args[args.index("--data") + 1] = str(data_dir / "all.jsonl")
    cut = args.index("--eval-data")
    del args[cut : cut + 2]
    args += ["--text-column", "utterance", "--label-column", "intent", "--eval-fraction", "0.2"]
    code, output = _invoke(args)
    assert code == 0, output
    manifest = load_manifest(tmp_path / "out")
    assert manifest.training_data.eval_rows == 60  # 20 % of 60 rows in each of 5 classes
    assert manifest.training_data.eval_sha256 == manifest.training_data.train_sha256
    assert manifest.training_data.text_column == "utterance"


def test_no_refit_ships_the_model_that_chose_the_threshold(data_dir: Path, tmp_path: Path) -> None:
    code, output = _invoke([*_args(data_dir, tmp_path / "out"), "--no-refit"])
    assert code == 0, output
    manifest = load_manifest(tmp_path / "out")
    training = manifest.metrics["training"]
    assert isinstance(training, dict)
    assert training["threshold_model"] == "same as shipped_model"
    assert training["shipped_model"]["rows"] == 270  # 300 training rows minus 10 % validation
    assert "--no-refit" in str(manifest.build["command"])


def test_refit_trains_the_shipped_model_on_every_training_row(built: tuple[Path, str]) -> None:
    manifest = load_manifest(built[0])
    training = manifest.metrics["training"]
    assert isinstance(training, dict)
    assert training["threshold_model"]["rows"] == 270
    assert training["shipped_model"]["rows"] == 300
    assert "--refit" in str(manifest.build["command"])


def _assert_nothing_written(out: Path) -> None:
    """A refused build leaves the output directory exactly as it was (here: only a README)."""
    assert sorted(p.name for p in out.iterdir()) == ["README.md"]
    assert (out / "README.md").read_text() == "keep me\n"


@pytest.fixture
def out_with_readme(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text("keep me\n")
    return out


def test_damaged_int8_weights_are_refused(
    data_dir: Path, out_with_readme: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = quantize.quantize_int8

    def damaging_quantize(src: Path, dst: Path, exclude: Sequence[str] = ()) -> None:
        real(src, dst, exclude)
        graph = onnx.load(str(dst))
        rng = np.random.default_rng(0)
        for init in graph.graph.initializer:
            if init.data_type == onnx.TensorProto.INT8 and len(init.dims) == 2:
                noise = rng.integers(-127, 128, size=tuple(init.dims), dtype=np.int8)
                init.CopyFrom(numpy_helper.from_array(noise, name=init.name))
        onnx.save(graph, str(dst))

    monkeypatch.setattr(quantize, "quantize_int8", damaging_quantize)
    code, output = _invoke(_args(data_dir, out_with_readme))
    assert code == EXIT_REFUSED
    assert "refused" in output
    assert "--max-accuracy-drop" in output
    assert "nothing was written" in output
    _assert_nothing_written(out_with_readme)


def test_a_graph_left_in_float_is_refused(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_quantization(src: Path, dst: Path, exclude: Sequence[str] = ()) -> None:
        dst.write_bytes(src.read_bytes())

    monkeypatch.setattr(quantize, "quantize_int8", no_quantization)
    out = tmp_path / "never"
    code, output = _invoke(_args(data_dir, out))
    assert code == EXIT_REFUSED
    assert "quantization did not take" in output
    assert not out.exists()


def test_a_package_that_fails_the_runtime_load_is_refused(
    data_dir: Path, out_with_readme: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = package.write_vocabulary

    def wrong_hash(words: list[str], path: Path) -> FileRef:
        ref = real(words, path)
        return ref.model_copy(update={"sha256": "0" * 64})

    monkeypatch.setattr(package, "write_vocabulary", wrong_hash)
    code, output = _invoke(_args(data_dir, out_with_readme))
    assert code == EXIT_REFUSED
    assert "does not load with ModelRuntime.load" in output
    _assert_nothing_written(out_with_readme)


def test_an_unknown_column_is_a_data_error(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "never"
    code, output = _invoke([*_args(data_dir, out), "--label-column", "intent"])
    assert code == EXIT_DATA_ERROR
    assert re.search(r"no column 'intent'", output)
    assert not out.exists()


def test_eval_labels_unknown_to_training_are_a_data_error(data_dir: Path, tmp_path: Path) -> None:
    odd = tmp_path / "odd.csv"
    odd.write_text("text,category\nhello there,greeting\nmy card is lost,card_lost\n", encoding="utf-8")
    args = _args(data_dir, tmp_path / "never")
    args[args.index("--eval-data") + 1] = str(odd)
    code, output = _invoke(args)
    assert code == EXIT_DATA_ERROR
    assert "greeting" in output
    assert not (tmp_path / "never").exists()


def test_verify_prints_the_numbers_of_a_package(built: tuple[Path, str]) -> None:
    out, _ = built
    code, output = _invoke(["verify", str(out)])
    assert code == 0, output
    assert "synthetic 0.1.0" in output
    assert "review threshold" in output
    assert "guard: fitted T = " in output  # the calibration guard's verdict (kept here: ECE fell)
    assert "size budget" in output


def test_the_platform_fingerprint_names_the_kernels_that_decide_float_bits() -> None:
    fingerprint = platform_fingerprint()
    assert set(fingerprint) == {"machine", "cpu_model", "kernel_flags", "blas"}
    assert fingerprint == platform_fingerprint()  # stable within a process (BLAS list sorted)
    blas = fingerprint["blas"]
    assert isinstance(blas, list)
    assert blas, "numpy links a BLAS; threadpoolctl must see it"
    assert all({"internal_api", "version", "architecture", "num_threads"} <= set(entry) for entry in blas)


# --- Size budget and the vocabulary cap ----------------------------------------------------------------


def test_the_size_budget_is_recorded_and_the_default_build_is_within_it(built: tuple[Path, str]) -> None:
    out, output = built
    manifest = load_manifest(out)
    budget = manifest.metrics["size_budget"]
    assert isinstance(budget, dict)
    assert budget["max_model_mb"] == 10.0
    assert budget["within"] is True
    assert budget["int8_mb"] == round((out / MODEL_FILE).stat().st_size / 1e6, 3)
    assert "budget 10.0 MB" in output
    parameters = manifest.build["parameters"]
    assert isinstance(parameters, dict)
    assert parameters["max_features"] is None  # the default caps nothing
    assert budget["n_features"] == parameters["n_features"]
    assert "--max-features" not in str(manifest.build["command"])  # unset options are not spelled out
    assert "--max-model-mb 10.0" in str(manifest.build["command"])


def test_a_model_over_the_size_budget_is_refused_before_the_other_trainings(
    data_dir: Path, out_with_readme: Path
) -> None:
    code, output = _invoke([*_args(data_dir, out_with_readme), "--max-model-mb", "0.001"])
    assert code == EXIT_REFUSED
    assert "held-out model" in output
    assert "--max-model-mb 0.001" in output
    assert "--max-features" in output  # the message names the knob that helps
    assert "(all training rows)" not in output  # refused on the first model: no refit trained
    _assert_nothing_written(out_with_readme)


def test_max_features_caps_each_vectorizer_and_keeps_onnx_parity(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "capped"
    extra = ("--max-features", "12", "--no-refit", "--unknown-holdout-share", "0", "--max-model-mb", "0")
    extra = (*extra, "--per-class-correction", "bonferroni")
    code, output = _invoke([*_args(data_dir, out), *extra])
    assert code == 0, output
    manifest = load_manifest(out)
    parameters = manifest.build["parameters"]
    assert isinstance(parameters, dict)
    assert parameters["max_features"] == 12
    assert 0 < int(parameters["n_features"]) <= 24  # at most 12 per vectorizer (word, char)
    assert "--max-features 12" in str(manifest.build["command"])
    vocab = (out / package.VOCAB_FILE).read_text(encoding="utf-8").splitlines()
    assert 0 < len(vocab) <= 12
    parity = manifest.metrics["sklearn_vs_onnx_fp32"]
    assert isinstance(parity, dict)
    assert parity["top1_agreement"] == 1.0
    assert parity["max_abs_prob_diff"] < 1e-3
    budget = manifest.metrics["size_budget"]
    assert isinstance(budget, dict)
    assert budget["max_model_mb"] == 0.0
    assert budget["within"] is True
    per_class = manifest.metrics["per_class_thresholds"]
    assert isinstance(per_class, dict)
    assert "corrected for 5 classes (bonferroni)" in str(per_class["rule"])
    assert "--per-class-correction bonferroni" in str(manifest.build["command"])


def test_the_runtime_reads_the_hidden_distance_and_scores_unknown_with_it(built: tuple[Path, str]) -> None:
    out, _ = built
    runtime = ModelRuntime.load(out)
    assert runtime.manifest.input.onnx_hidden_distance_output == "hidden_distance"
    texts = ["my card was stolen please help", "what is the euros rate", "zebra quantum violin", "el perro come pan"]
    prediction = runtime.predict(texts)
    assert prediction.hidden_distance is not None
    assert prediction.hidden_distance.shape == (4,)
    assert (prediction.hidden_distance >= 0).all()
    scores = runtime.unknown_scores(texts, prediction.probabilities, prediction.hidden_distance)
    assert scores is not None
    assert max(scores[:2]) < min(scores[2:])  # off-topic text scores as less like any known class
    single = runtime.unknown_score(texts[2], prediction.probabilities[2], float(prediction.hidden_distance[2]))
    assert single == pytest.approx(scores[2], abs=0.05)  # alone vs in a batch: int8 scales differ a little
    with pytest.raises(ValueError, match="hidden_distance"):
        runtime.unknown_scores(texts, prediction.probabilities)  # the score needs the graph's distance


def _rewrite_manifest(src: Path, dst: Path, **input_changes: object) -> Path:
    shutil.copytree(src, dst)
    raw = json.loads((dst / MANIFEST_FILE).read_text(encoding="utf-8"))
    raw["input"].update(input_changes)
    (dst / MANIFEST_FILE).write_text(json.dumps(raw), encoding="utf-8")
    return dst


def test_a_distance_output_the_graph_lacks_is_refused_at_load(built: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = built
    broken = _rewrite_manifest(out, tmp_path / "pkg", onnx_hidden_distance_output="no_such_output")
    with pytest.raises(ModelIntegrityError, match="probe"):
        ModelRuntime.load(broken)


def test_an_unknown_score_on_a_distance_no_output_gives_is_an_invalid_manifest(
    built: tuple[Path, str], tmp_path: Path
) -> None:
    out, _ = built
    broken = _rewrite_manifest(out, tmp_path / "pkg", onnx_hidden_distance_output=None)
    with pytest.raises(ManifestError, match="onnx_hidden_distance_output"):
        load_manifest(broken)
