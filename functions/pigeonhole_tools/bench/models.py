"""The three models the bench compares, from one training: scikit-learn (joblib), ONNX fp32 and ONNX int8.

Why train here: the shipped package keeps only the int8 graph, and the comparisons need the fp32 graph
and the scikit-learn pipeline of the *same* fitted recipe. The recipe is the build's (`training.train`),
with fewer epochs: the number of epochs changes the weights, not the shapes, so inference cost is the
same as the shipped model's (the bench also times the shipped int8 graph, and reports both). Cached
under ``build/bench/models/`` keyed by the data file's hash and the parameters.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from pigeonhole.model.features import normalize_batch

BENCH_EPOCHS = 2


@dataclass(frozen=True)
class BenchModels:
    """Paths of one training's artefacts."""

    directory: Path
    sklearn: Path  # joblib of Pipeline([("features", FeatureUnion), ("mlp", MLPClassifier)])
    fp32: Path
    int8: Path
    train_seconds: float
    n_features: int


def _key(data: Path, epochs: int) -> str:
    digest = hashlib.sha256(data.read_bytes())
    digest.update(f"epochs={epochs}".encode())
    return digest.hexdigest()[:16]


def ensure_models(data: Path, cache_root: Path, epochs: int = BENCH_EPOCHS) -> BenchModels:
    """Train (or reuse) the recipe on ``data`` and write the three artefacts."""
    directory = cache_root / f"banking77-{_key(data, epochs)}"
    info_path = directory / "info.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        return BenchModels(
            directory,
            directory / "pipeline.joblib",
            directory / "model.fp32.onnx",
            directory / "model.int8.onnx",
            info["train_seconds"],
            info["n_features"],
        )
    import joblib  # type: ignore[import-untyped]
    from sklearn.pipeline import Pipeline

    from pigeonhole_tools.training import export, quantize
    from pigeonhole_tools.training.data import load_labelled
    from pigeonhole_tools.training.train import TrainParams, train

    labelled = load_labelled(data, "text", "category")
    params = replace(TrainParams(), epochs=epochs)
    started = time.perf_counter()
    model = train(normalize_batch(labelled.texts), labelled.labels, params)
    seconds = time.perf_counter() - started
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(Pipeline([("features", model.features), ("mlp", model.mlp)]), directory / "pipeline.joblib")
    export.save(export.to_onnx(model), directory / "model.fp32.onnx")
    quantize.quantize_int8(directory / "model.fp32.onnx", directory / "model.int8.onnx")
    info_path.write_text(
        json.dumps({"train_seconds": seconds, "n_features": model.n_features, "epochs": epochs}), encoding="utf-8"
    )
    return ensure_models(data, cache_root, epochs)
