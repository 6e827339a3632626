"""How a package routes text from outside its domain: the share sent to `unknown`, and away from auto.

Run: ``python -m pigeonhole_tools.training.offdomain layers/model`` (defaults: the SMS Spam Collection
and BANKING77's test set beside the repository). Events are scored through `ModelRuntime` in the
classifier's batches of 10 and routed as the runtime routes them: unknown score at or above the
threshold -> `unknown`; else confidence below the predicted label's threshold -> `low_confidence`.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pigeonhole.model.runtime import ModelRuntime
from pigeonhole_tools.training.routes import route_masks

BATCH = 10


@dataclass(frozen=True)
class Routed:
    n: int
    unknown: float  # share routed `unknown`
    low_confidence: float  # share routed `low_confidence`

    @property
    def away(self) -> float:
        return self.unknown + self.low_confidence


def routed_shares(runtime: ModelRuntime, texts: Sequence[str]) -> Routed:
    """The shares of `texts` the runtime routes `unknown` and `low_confidence` (a package without an unknown
    score routes nothing `unknown`)."""
    spec = runtime.manifest.unknown
    thresholds = np.asarray([runtime.manifest.thresholds.for_label(c) for c in runtime.classes])
    unknown = low = 0
    for start in range(0, len(texts), BATCH):
        chunk = list(texts[start : start + BATCH])
        prediction = runtime.predict(chunk)
        probs = prediction.probabilities
        scores = runtime.unknown_scores(chunk, probs, prediction.hidden_distance)
        flagged, below = route_masks(probs, scores, None if spec is None else spec.threshold, thresholds)
        unknown += int(flagged.sum())
        low += int(below.sum())
    n = max(len(texts), 1)
    return Routed(n=len(texts), unknown=unknown / n, low_confidence=low / n)


def sms_texts(path: Path, kind: str | None = None) -> list[str]:
    """Messages of the SMS Spam Collection (tab-separated label, text), optionally only "ham" or "spam"."""
    rows = [line.split("\t", 1) for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    return [text for label, text in (r for r in rows if len(r) == 2) if kind is None or label == kind]


def main() -> None:
    datasets = Path("../shared/datasets")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--sms", type=Path, default=datasets / "sms_spam" / "SMSSpamCollection")
    parser.add_argument("--known", type=Path, default=datasets / "banking77" / "test.csv")
    args = parser.parse_args()
    runtime = ModelRuntime.load(args.package)
    with args.known.open(newline="", encoding="utf-8") as handle:
        known = [row["text"] for row in csv.DictReader(handle)]
    sets = {"sms ham": sms_texts(args.sms, "ham"), "sms spam": sms_texts(args.sms, "spam"), "known": known}
    print(f"{args.package}: unknown score on {runtime.manifest.unknown.features if runtime.manifest.unknown else None}")
    for name, texts in sets.items():
        r = routed_shares(runtime, texts)
        print(
            f"{name:10s} n={r.n:5d}  unknown {r.unknown:.3f}  low_confidence {r.low_confidence:.3f}  away {r.away:.3f}"
        )


if __name__ == "__main__":
    main()
