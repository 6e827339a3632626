"""The models a run classifies with: the shipped package and one trained without the held-out intents."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pigeonhole.model.runtime import ModelRuntime
from pigeonhole_tools.monitoring.harness.config import HarnessConfig, ModelKey
from pigeonhole_tools.monitoring.harness.pools import read_csv


@dataclass
class LoadedModel:
    key: ModelKey
    model_dir: Path
    runtime: ModelRuntime
    classes: list[str]
    unknown_intents: tuple[str, ...]  # intents of the data the model has no class for


def load_model(key: ModelKey, model_dir: Path, all_intents: Sequence[str]) -> LoadedModel:
    runtime = ModelRuntime.load(model_dir, threads=1)
    classes = list(runtime.classes)
    return LoadedModel(key, model_dir, runtime, classes, tuple(sorted(set(all_intents) - set(classes))))


def heldout_model(cfg: HarnessConfig, progress: Callable[[str], None]) -> Path:
    """A BANKING77 model trained without the held-out intents (built once, cached in the work dir).

    Built by the training package's Python API on filtered copies of train/test written to the work dir
    (never into the repo); fewer epochs than the default recipe to keep the harness quick.
    """
    import pigeonhole_tools.training as training_package
    from pigeonhole.model.manifest import load_manifest

    intents = sorted(cfg.heldout_intents)
    recipe = hashlib.sha256()  # the builder's code is part of the cache key: a changed recipe rebuilds
    for source in sorted(Path(training_package.__file__).parent.glob("*.py")):
        recipe.update(source.read_bytes())
    key = json.dumps([intents, cfg.heldout_epochs, cfg.seed, recipe.hexdigest()])
    tag = hashlib.sha256(key.encode()).hexdigest()[:10]
    out = cfg.work_dir / f"model-heldout-{tag}"
    if (out / "manifest.json").is_file():
        return out
    from rich.console import Console

    from pigeonhole_tools.training.build import BuildOptions, run_build
    from pigeonhole_tools.training.progress import Reporter
    from pigeonhole_tools.training.train import TrainParams

    data = cfg.work_dir / f"data-heldout-{tag}"
    data.mkdir(parents=True, exist_ok=True)
    for name in ("train.csv", "test.csv"):
        texts, labels = read_csv(cfg.data_dir / name)
        with (data / name).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "category"])
            writer.writerows((t, lab) for t, lab in zip(texts, labels, strict=True) if lab not in intents)
    progress(f"training the held-out model ({len(intents)} intents left out, {cfg.heldout_epochs} epochs) → {out}")
    run_build(
        BuildOptions(
            data=data / "train.csv",
            eval_data=data / "test.csv",
            name="banking77-heldout",
            version=f"harness-heldout-{tag}",
            out=out,
            params=TrainParams(epochs=cfg.heldout_epochs, seed=cfg.seed),
            latency_repeats=5,
            command="pigeonhole drift harness (held-out intents: " + ", ".join(intents) + ")",
        ),
        Reporter(Console(stderr=True, file=io.StringIO())),
    )
    load_manifest(out)  # fail here, not mid-run, if the package is unreadable
    return out
