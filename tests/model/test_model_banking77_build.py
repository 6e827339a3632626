"""The real build on BANKING77 (train.csv -> test.csv), once per session, against the release targets.

Runs the same command as `make model` with default options, so it also checks that the committed
package in layers/model is what the recipe produces: byte for byte only on the machine that built it
(same library versions and CPU/BLAS fingerprint), and by quality and label agreement everywhere.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pigeonhole.constants import MODEL_FILE
from pigeonhole.model.manifest import Manifest, load_manifest, sha256_file
from pigeonhole.model.runtime import ModelRuntime
from pigeonhole_tools.training.build import library_versions, platform_fingerprint
from pigeonhole_tools.training.cli import model_app

# Three trainings of ~40k features: ~6 min on 2 idle cores, far more on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

TARGET_INT8_ACCURACY = 0.92
TARGET_AGREEMENT = 0.99
TARGET_ECE = 0.03  # issue 11: the uncalibrated default measured 0.044
# A rebuild elsewhere (another CPU: other float kernels) must stay this close to the committed package.
REBUILD_ACCURACY_TOLERANCE = 0.01
REBUILD_MIN_AGREEMENT = 0.97
BYTE_RELEVANT = ("numpy", "scipy", "scikit-learn", "skl2onnx", "onnx", "onnxruntime")


@pytest.fixture(scope="module")
def built(banking77_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("banking77") / "model"
    args = [
        "build",
        "--data",
        str(banking77_dir / "train.csv"),
        "--eval-data",
        str(banking77_dir / "test.csv"),
        "--text-column",
        "text",
        "--label-column",
        "category",
        "--name",
        "banking77-intents",
        "--version",
        "1.0.0",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(model_app, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def manifest(built: Path) -> Manifest:
    return load_manifest(built)


def _metric(manifest: Manifest, *path: str) -> float:
    node: object = manifest.metrics
    for key in path:
        assert isinstance(node, dict), path
        node = node[key]
    assert isinstance(node, int | float), path
    return float(node)


def test_int8_accuracy_reaches_the_target(manifest: Manifest) -> None:
    assert _metric(manifest, "int8", "accuracy") >= TARGET_INT8_ACCURACY


def test_int8_agrees_with_fp32(manifest: Manifest) -> None:
    assert _metric(manifest, "fp32_vs_int8", "top1_agreement") >= TARGET_AGREEMENT
    assert _metric(manifest, "accuracy_drop") <= 0.01


def test_the_graph_matches_scikit_learn(manifest: Manifest) -> None:
    """No train/serve skew: the ONNX featurizer reproduces scikit-learn's on normalized text."""
    assert _metric(manifest, "sklearn_vs_onnx_fp32", "top1_agreement") >= 0.999
    assert _metric(manifest, "sklearn_vs_onnx_fp32", "max_abs_prob_diff") < 1e-3


def test_the_weights_are_int8_and_the_package_is_small(built: Path, manifest: Manifest) -> None:
    assert _metric(manifest, "quantization", "int8_share") >= 0.9
    size = (built / MODEL_FILE).stat().st_size
    assert size < 8_000_000
    assert size < 0.4 * _metric(manifest, "sizes", "fp32_bytes")


def test_the_review_threshold_auto_routes_most_events_at_the_promised_precision(manifest: Manifest) -> None:
    threshold = manifest.metrics["review_threshold"]
    assert isinstance(threshold, dict)
    assert threshold["reached_target"] is True
    assert _metric(manifest, "review_threshold", "validation", "auto_accuracy") >= 0.97
    assert _metric(manifest, "review_threshold", "eval", "coverage") >= 0.5


def test_calibration_reaches_the_ece_target_without_changing_a_label(manifest: Manifest) -> None:
    for kind in ("fp32", "int8"):
        assert _metric(manifest, "calibration", "eval", kind, "after", "ece_15") <= TARGET_ECE, kind
        assert _metric(manifest, "calibration", "eval", kind, "after", "accuracy") == _metric(
            manifest, "calibration", "eval", kind, "before", "accuracy"
        )
    assert _metric(manifest, "int8", "ece_15") == pytest.approx(
        _metric(manifest, "calibration", "eval", "int8", "after", "ece_15"), abs=1e-6
    )


def test_the_unknown_route_is_fitted_and_keeps_its_promise_on_known_events(manifest: Manifest) -> None:
    spec = manifest.unknown
    assert spec is not None
    assert spec.target["max_known_share_unknown"] == 0.05
    # Chosen on validation for 5 %; on the (all known) test set with the shipped model it must stay close.
    assert _metric(manifest, "unknown", "eval", "share_unknown") <= 0.08
    assert manifest.drift_baseline.unknown_rate is not None
    assert set(manifest.thresholds.per_class) <= set(manifest.classes)


def test_the_built_package_loads(built: Path) -> None:
    runtime = ModelRuntime.load(built)
    assert len(runtime.classes) == 77
    assert runtime.manifest.drift_baseline.n_events == 3080


def _test_set(banking77_dir: Path) -> tuple[list[str], list[str]]:
    with (banking77_dir / "test.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [row["text"] for row in rows], [row["category"] for row in rows]


def test_a_rebuild_on_any_machine_keeps_the_committed_quality(
    built: Path, model_dir: Path, banking77_dir: Path
) -> None:
    """What users rely on, on every machine: the recipe still reaches the committed package's quality
    and labels the test set almost exactly as the committed package does (float training differs in
    its last bits between CPUs, so the bytes may not)."""
    committed, rebuilt = load_manifest(model_dir), load_manifest(built)
    assert rebuilt.classes == committed.classes
    committed_acc = _metric(committed, "int8", "accuracy")
    assert _metric(rebuilt, "int8", "accuracy") >= committed_acc - REBUILD_ACCURACY_TOLERANCE
    texts, labels = _test_set(banking77_dir)
    ours = ModelRuntime.load(model_dir).predict_proba(texts).argmax(axis=1)
    theirs = ModelRuntime.load(built).predict_proba(texts).argmax(axis=1)
    agreement = float(np.mean(ours == theirs))
    assert agreement >= REBUILD_MIN_AGREEMENT, f"rebuilt package agrees with the committed one on {agreement:.4f}"
    # And the committed package is still right on this machine's onnxruntime, within the same tolerance.
    truth = np.array([committed.classes.index(label) for label in labels])
    assert float(np.mean(ours == truth)) >= committed_acc - REBUILD_ACCURACY_TOLERANCE


def test_the_committed_package_is_byte_identical_on_the_machine_that_built_it(built: Path, model_dir: Path) -> None:
    committed = load_manifest(model_dir)
    recorded = committed.build.get("libraries")
    assert isinstance(recorded, dict)
    current = library_versions()
    differ = {lib: (recorded.get(lib), current[lib]) for lib in BYTE_RELEVANT if recorded.get(lib) != current[lib]}
    if differ:
        pytest.skip(f"library versions differ from the committed build {differ}: bytes may legitimately differ")
    if committed.build.get("platform_fingerprint") != platform_fingerprint():
        pytest.skip(
            "this machine's CPU/BLAS fingerprint differs from the one that built the committed package "
            "(or the package predates fingerprints): byte identity is a property of one machine; "
            "quality and agreement are checked by test_a_rebuild_on_any_machine_keeps_the_committed_quality"
        )
    assert sha256_file(built / MODEL_FILE) == committed.model.sha256
    assert load_manifest(built).thresholds == committed.thresholds
