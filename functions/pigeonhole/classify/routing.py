"""From probabilities to a routed, versioned result: the output contract.

Every result carries why it went where it went (``route_reason``):

- ``unknown``: the model's unknown score (``pigeonhole.model.unknown``) is at or above the manifest's
  ``unknown.threshold``: the event looks like none of the known classes, so it goes to review whatever
  its confidence (a confident wrong label does more harm than a review);
- ``low_confidence``: the top-1 probability is below its class's threshold
  (``thresholds.per_class.get(label, review_confidence)``): review;
- ``confident``: otherwise: routed automatically to the output bus.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from pigeonhole.classify.contract import InputEvent
from pigeonhole.constants import OUTPUT_SCHEMA
from pigeonhole.model.manifest import Manifest

Route = Literal["auto", "review"]
RouteReason = Literal["confident", "low_confidence", "unknown"]
ROUTE_REASONS: tuple[RouteReason, ...] = ("confident", "low_confidence", "unknown")


@dataclass(frozen=True)
class Classification:
    event: InputEvent
    label_index: int
    label: str
    confidence: float
    top_k: list[tuple[str, float]]
    route: Route
    window: str
    route_reason: RouteReason = "confident"
    unknown_score: float | None = None  # None: the model has no unknown score

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
            "route_reason": self.route_reason,
            "unknown_score": self.unknown_score,
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


def decide(
    label: str,
    confidence: float,
    threshold: float,
    per_class: Mapping[str, float] | None = None,
    unknown_score: float | None = None,
    unknown_threshold: float | None = None,
) -> tuple[Route, RouteReason]:
    """The route and its reason (see the module docstring); both thresholds are inclusive."""
    if unknown_score is not None and unknown_threshold is not None and unknown_score >= unknown_threshold:
        return "review", "unknown"
    needed = (per_class or {}).get(label, threshold)
    if confidence < needed:
        return "review", "low_confidence"
    return "auto", "confident"


def route_one(
    event: InputEvent,
    row: np.ndarray,
    classes: list[str],
    threshold: float,
    top_k: int,
    window_seconds: int,
    per_class: Mapping[str, float] | None = None,
    unknown_score: float | None = None,
    unknown_threshold: float | None = None,
) -> Classification:
    """Label one event from its probability row and route it (see `decide`)."""
    k = min(top_k, len(classes))
    order = np.argsort(-row, kind="stable")[:k]
    best = int(order[0])
    confidence = round(float(row[best]), 6)
    score = None if unknown_score is None else round(float(unknown_score), 6)
    route, reason = decide(classes[best], confidence, threshold, per_class, score, unknown_threshold)
    return Classification(
        event=event,
        label_index=best,
        label=classes[best],
        confidence=confidence,
        top_k=[(classes[int(j)], round(float(row[j]), 6)) for j in order],
        route=route,
        window=window_start(event.time, window_seconds),
        route_reason=reason,
        unknown_score=score,
    )


def route_batch(
    events: list[InputEvent],
    probabilities: np.ndarray,
    classes: list[str],
    threshold: float,
    top_k: int,
    window_seconds: int,
    per_class: Mapping[str, float] | None = None,
    unknown_scores: np.ndarray | None = None,
    unknown_threshold: float | None = None,
) -> list[Classification]:
    """Label and route each event (see `decide`)."""
    return [
        route_one(
            event,
            probabilities[i],
            classes,
            threshold,
            top_k,
            window_seconds,
            per_class,
            None if unknown_scores is None else float(unknown_scores[i]),
            unknown_threshold,
        )
        for i, event in enumerate(events)
    ]
