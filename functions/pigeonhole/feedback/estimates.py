"""Accuracy from labels that accounts for how predictions were captured (inverse-probability weighting).

Why: the capture policy (:mod:`pigeonhole.capture`) keeps every review-routed prediction but only a
share of auto-routed ones, and only captured predictions can be joined to a label. Counting labelled
events as they come over-represents review-routed events (the hard ones), so the plain accuracy of the
labelled set is biased low. Each capture stores its weight ``w = 1 / rate``; the feedback function adds,
per route, the label count, Σw, Σw·correct and Σw² to the label's window item (``ADD``, exactly once
with the label's marker). The estimate is the ratio (Hájek) estimator Σw·correct / Σw, per route and
overall, with Kish's effective sample size (Σw)² / Σw² so a reader sees how many labels the overall
figure is really worth. Unbiased for the population under the assumption that labels arrive for
captured events independently of whether the prediction was right (e.g. every captured event, or a
random share of them, gets labelled).

Item attributes (window items, next to :mod:`pigeonhole.drift.counters`' names; ``<r>`` is ``auto`` or
``review``): ``iw_n_<r>`` labels, ``iw_c_<r>`` correct labels, ``iw_w_<r>`` Σw, ``iw_wc_<r>`` Σw·correct,
``iw_ww_<r>`` Σw².
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pigeonhole.capture import ROUTES

PREFIX = "iw_"
_FIELDS = ("n", "w", "wc", "ww")


def capture_weight(capture: Mapping[str, Any]) -> float:
    """A capture's sampling weight (NaN when it or the route is unreadable); captures written before the
    policy carry none and were captured at rate 1."""
    if capture.get("route") not in ROUTES:
        return math.nan
    try:
        weight = float(capture.get("weight", 1.0))
    except (TypeError, ValueError, ArithmeticError):
        return math.nan
    return weight if math.isfinite(weight) else math.nan


@dataclass(frozen=True)
class RouteSums:
    """Weighted label sums of one route (mergeable by addition)."""

    labelled: int = 0
    weight: float = 0.0  # Σw: the events these labels stand for
    weight_correct: float = 0.0  # Σw·1[predicted == true]
    weight_sq: float = 0.0  # Σw²

    def __add__(self, other: RouteSums) -> RouteSums:
        return RouteSums(
            self.labelled + other.labelled,
            self.weight + other.weight,
            self.weight_correct + other.weight_correct,
            self.weight_sq + other.weight_sq,
        )


@dataclass(frozen=True)
class Estimate:
    """Accuracy of one route (or overall) from weighted labels."""

    labelled: int
    represented: float  # Σw: how many classified events the labels stand for
    accuracy: float | None  # Σw·correct / Σw (None without labels)
    unweighted_accuracy: float | None  # correct / labelled, for comparison (biased when rates differ)
    effective_sample_size: float  # (Σw)² / Σw²


@dataclass(frozen=True)
class WeightedLabels:
    """Per-route weighted label sums of one window (or of several, merged)."""

    routes: Mapping[str, RouteSums] = field(default_factory=dict)
    correct_unweighted: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_joins(cls, joins: Iterable[tuple[str, float, bool]]) -> WeightedLabels:
        """From ``(route, weight, correct)`` per joined label."""
        routes: dict[str, RouteSums] = {}
        correct: dict[str, int] = {}
        for route, weight, ok in joins:
            if route not in ROUTES:
                raise ValueError(f"unknown route {route!r}")
            if not weight >= 1.0:
                raise ValueError(f"a sampling weight is 1 / rate >= 1, got {weight}")
            routes[route] = routes.get(route, RouteSums()) + RouteSums(1, weight, weight if ok else 0.0, weight**2)
            correct[route] = correct.get(route, 0) + int(ok)
        return cls(routes, correct)

    def to_item_updates(self) -> dict[str, int | float]:
        """``ADD`` increments for the window item (the unweighted correct count is ``iw_c_<r>``)."""
        out: dict[str, int | float] = {}
        for route, s in self.routes.items():
            out[f"{PREFIX}n_{route}"] = s.labelled
            out[f"{PREFIX}c_{route}"] = self.correct_unweighted.get(route, 0)
            out[f"{PREFIX}w_{route}"] = s.weight
            out[f"{PREFIX}wc_{route}"] = s.weight_correct
            out[f"{PREFIX}ww_{route}"] = s.weight_sq
        return out

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> WeightedLabels:
        """Read back from a window item (any other attribute is ignored; missing ones are 0)."""

        def num(name: str) -> float:
            value = item.get(name, 0)
            if isinstance(value, Mapping):  # the client API's {"N": "..."}
                value = value.get("N", 0)
            return float(Decimal(str(value)))

        routes = {}
        correct = {}
        for route in ROUTES:
            n = int(num(f"{PREFIX}n_{route}"))
            if n:
                routes[route] = RouteSums(
                    n, num(f"{PREFIX}w_{route}"), num(f"{PREFIX}wc_{route}"), num(f"{PREFIX}ww_{route}")
                )
                correct[route] = int(num(f"{PREFIX}c_{route}"))
        return cls(routes, correct)

    @classmethod
    def merge_items(cls, items: Iterable[Mapping[str, Any]]) -> WeightedLabels:
        """Merge window items (the shards of a window, or many windows)."""
        total = cls()
        for item in items:
            total = total + cls.from_item(item)
        return total

    def __add__(self, other: WeightedLabels) -> WeightedLabels:
        routes = {r: self.routes.get(r, RouteSums()) + other.routes.get(r, RouteSums()) for r in ROUTES}
        correct = {r: self.correct_unweighted.get(r, 0) + other.correct_unweighted.get(r, 0) for r in ROUTES}
        return WeightedLabels(
            {r: s for r, s in routes.items() if s.labelled}, {r: c for r, c in correct.items() if routes[r].labelled}
        )

    def estimate(self, routes: Sequence[str] = ROUTES) -> Estimate:
        """The estimate over ``routes`` together (one route: that route's; default: overall)."""
        total = RouteSums()
        correct = 0
        for r in routes:
            total = total + self.routes.get(r, RouteSums())
            correct += self.correct_unweighted.get(r, 0)
        if total.labelled == 0:
            return Estimate(0, 0.0, None, None, 0.0)
        return Estimate(
            labelled=total.labelled,
            represented=total.weight,
            accuracy=total.weight_correct / total.weight,
            unweighted_accuracy=correct / total.labelled,
            effective_sample_size=total.weight**2 / total.weight_sq,
        )

    def summary(self) -> dict[str, Estimate]:
        """Per route and overall (the report's shape)."""
        return {**{r: self.estimate((r,)) for r in ROUTES}, "overall": self.estimate()}
