"""Text pools (BANKING77, generated off-domain and garbled text, held-out intents) and their cached predictions."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pigeonhole.model.runtime import ModelRuntime
from pigeonhole.naming import MAX_BATCH_SIZE
from pigeonhole_tools.monitoring import synthetic


@dataclass
class Pool:
    """Texts with their true intent (None: no intent of this bank) and, per model, cached probabilities."""

    name: str
    texts: list[str]
    labels: list[str | None]
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)

    def indices(self, intents: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> np.ndarray:
        keep = [
            i
            for i, label in enumerate(self.labels)
            if (intents is None or label in intents) and (label is None or label not in exclude)
        ]
        return np.asarray(keep, dtype=np.int64)


def read_csv(path: Path, text_column: str = "text", label_column: str = "category") -> tuple[list[str], list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r[text_column] for r in rows], [r[label_column] for r in rows]


def build_pools(data_dir: Path, seed: int, heldout: Sequence[str]) -> dict[str, Pool]:
    """The BANKING77 test set, generated off-domain and garbled text, and every row of the held-out intents."""
    test_texts, test_labels = read_csv(data_dir / "test.csv")
    train_texts, train_labels = read_csv(data_dir / "train.csv")
    unseen = [(t, lab) for t, lab in zip(train_texts + test_texts, train_labels + test_labels, strict=True)]
    unseen = [(t, lab) for t, lab in unseen if lab in heldout]
    off = synthetic.off_domain_texts(600, seed)
    return {
        "test": Pool("test", test_texts, list(test_labels)),
        "offdomain": Pool("offdomain", off, [None] * len(off)),
        "garbled": Pool("garbled", synthetic.garbled_texts(test_texts, seed), list(test_labels)),
        "unseen": Pool("unseen", [t for t, _ in unseen], [lab for _, lab in unseen]),
    }


def classify_pool(runtime: ModelRuntime, texts: Sequence[str]) -> np.ndarray:
    """Probabilities in batches of 10, the event source mapping's batch (int8 dynamic quantization scales
    activations per batch, so batch composition nudges probabilities in the 3rd-4th decimal)."""
    rows = [runtime.predict_proba(list(texts[i : i + MAX_BATCH_SIZE])) for i in range(0, len(texts), MAX_BATCH_SIZE)]
    return np.vstack(rows) if rows else np.zeros((0, len(runtime.classes)), dtype=np.float32)
