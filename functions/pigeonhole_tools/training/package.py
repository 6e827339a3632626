"""Write the model package to a staging directory, check it as the runtime would, then install it.

Nothing reaches the output directory until the staged package has loaded through
`ModelRuntime.load` and reproduced the build's own int8 probabilities. Installation replaces each
file atomically and writes the manifest last: a crash in between leaves a manifest whose hashes do
not match, which the runtime refuses, never a silently mixed package.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from pigeonhole.constants import GOLDEN_FILE, MANIFEST_FILE, MODEL_FILE
from pigeonhole.model.manifest import FileRef, Manifest, sha256_file
from pigeonhole_tools.training.errors import BuildRefusedError

VOCAB_FILE = "vocab.txt"
PACKAGE_FILES = (MODEL_FILE, VOCAB_FILE, GOLDEN_FILE, MANIFEST_FILE)  # install order: manifest last


def file_ref(path: Path) -> FileRef:
    return FileRef(file=path.name, sha256=sha256_file(path), size_bytes=path.stat().st_size)


def write_vocabulary(words: Sequence[str], path: Path) -> FileRef:
    """One word a line, sorted, UTF-8, final newline; the runtime splits on newlines."""
    bad = [w for w in words if not w or "\n" in w or "\r" in w]
    if bad:
        raise ValueError(f"vocabulary entries must be non-empty single-line words: {bad[:3]}")
    path.write_text("".join(f"{w}\n" for w in sorted(words)), encoding="utf-8")
    return file_ref(path)


def write_manifest(manifest: Manifest, directory: Path) -> Path:
    path = directory / MANIFEST_FILE
    path.write_text(manifest.dump(), encoding="utf-8")
    return path


def self_check(
    directory: Path, texts: Sequence[str], expected: NDArray[np.floating], batch: int, atol: float = 1e-5
) -> None:
    """Load the package exactly as the classifier does and make sure it reproduces the build's numbers.

    Scored in the same runs of `batch` events as the build scored them: int8 dynamic quantization
    makes an event's probabilities depend slightly on the rest of its run.
    """
    from pigeonhole.drift.counters import CounterLayout
    from pigeonhole.model.runtime import ModelRuntime

    try:
        runtime = ModelRuntime.load(directory, threads=1)
    except Exception as exc:  # any failure to load means the package is unusable
        raise BuildRefusedError(f"the written package does not load with ModelRuntime.load: {exc}") from exc
    runs = [runtime.predict_proba(list(texts[i : i + batch])) for i in range(0, len(texts), batch)]
    probs = np.concatenate(runs, axis=0) if runs else np.zeros((0, 0), dtype=np.float32)
    if probs.shape != expected.shape or not np.allclose(probs, expected, atol=atol):
        raise BuildRefusedError("the written package does not reproduce the probabilities measured during the build")
    try:
        CounterLayout.from_baseline(runtime.manifest.drift_baseline, n_classes=len(runtime.classes))
    except (TypeError, ValueError) as exc:
        raise BuildRefusedError(f"the drift tracker cannot use this package's baseline: {exc}") from exc


def install(staging: Path, out: Path) -> None:
    """Copy the staged files into `out`, each replaced atomically, the manifest last."""
    out.mkdir(parents=True, exist_ok=True)
    for name in PACKAGE_FILES:
        partial = out / f".{name}.partial"
        shutil.copyfile(staging / name, partial)
        os.replace(partial, out / name)
