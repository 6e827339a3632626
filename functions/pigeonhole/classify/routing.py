"""From probabilities to a routed, versioned result: the output contract."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from pigeonhole.classify.contract import InputEvent
from pigeonhole.constants import OUTPUT_SCHEMA
from pigeonhole.model.manifest import Manifest

Route = Literal["auto", "review"]


@dataclass(frozen=True)
class Classification:
    event: InputEvent
    label_index: int
    label: str
    confidence: float
    top_k: list[tuple[str, float]]
    route: Route
    window: str

    def to_output(self, manifest: Manifest) -> dict[str, Any]:
        """The `EventClassified` detail; identical for the same input and model, so consumers can dedupe by id."""
        return {
            "schema": OUTPUT_SCHEMA,
            "id": self.event.id,
            "time": _iso(self.event.time),
            "label": self.label,
            "confidence": self.confidence,
            "top_k": [{"label": label, "score": score} for label, score in self.top_k],
            "route": self.route,
            "model": {
                "name": manifest.name,
                "version": manifest.version,
                "sha256": manifest.model.sha256,
            },
            "window": self.window,
        }


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def window_start(when: datetime, window_seconds: int) -> str:
    """The start of the fixed window holding `when` (event time, so late events land in their own window)."""
    epoch = int(when.timestamp())
    start = epoch - epoch % window_seconds
    return _iso(datetime.fromtimestamp(start, tz=UTC))


def route_one(
    event: InputEvent, row: np.ndarray, classes: list[str], threshold: float, top_k: int, window_seconds: int
) -> Classification:
    """Label one event from its probability row; below `threshold` the event goes to human review."""
    k = min(top_k, len(classes))
    order = np.argsort(-row, kind="stable")[:k]
    best = int(order[0])
    confidence = round(float(row[best]), 6)
    return Classification(
        event=event,
        label_index=best,
        label=classes[best],
        confidence=confidence,
        top_k=[(classes[int(j)], round(float(row[j]), 6)) for j in order],
        route="auto" if confidence >= threshold else "review",
        window=window_start(event.time, window_seconds),
    )


def route_batch(
    events: list[InputEvent],
    probabilities: np.ndarray,
    classes: list[str],
    threshold: float,
    top_k: int,
    window_seconds: int,
) -> list[Classification]:
    """Label each event; below `threshold` the event goes to human review."""
    return [
        route_one(event, probabilities[i], classes, threshold, top_k, window_seconds) for i, event in enumerate(events)
    ]
