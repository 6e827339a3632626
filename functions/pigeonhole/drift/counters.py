"""Mergeable window counters: the content of one DynamoDB window item, independent of DynamoDB.

A window holds only counts and sums, so any number of concurrent functions can add to it with
DynamoDB's atomic ``ADD``, and windows can be merged (re-aggregated to hours, days, a trailing
reference) by adding them: :meth:`WindowCounters.merge` is associative and commutative (exactly so
for the integer counts; the float sums up to rounding).

Item attribute naming (flat, ``[A-Za-z0-9_]`` only, so they are valid even without placeholders;
``<b>`` is a 0-based bin index, ``<i>``/``<p>``/``<t>`` 0-based class indices in manifest order):

==================  =========  =====================================================================
attribute           type       meaning
==================  =========  =====================================================================
``n``               int        events classified (valid input) in the window
``rev``             int        of those, routed to human review
``unk``             int        of those, routed to review as ``unknown`` (the unknown score fired)
``q``               int        events quarantined (invalid input; not part of ``n``)
``c_<i>``           int        events predicted as class ``i``
``conf_<b>``        int        events whose top-1 confidence falls in bin ``b`` (baseline edges)
``csum``            float      Σ top-1 confidence (expected accuracy = csum / n)
``csq``             float      Σ top-1 confidence² (spread of the confidence)
``f_<name>_<b>``    int        events whose feature ``name`` falls in bin ``b`` (baseline edges)
``nl``              int        predictions of this window that received a label
``cm_<p>_<t>``      int        labelled events predicted ``p`` whose true class is ``t``
``lconf_<b>``       int        labelled events in confidence bin ``b``          (ECE)
``lcorr_<b>``       int        of those, predicted correctly                    (ECE)
``lcsum_<b>``       float      Σ confidence of labelled events in bin ``b``     (ECE)
``brier``           float      Σ (confidence − 1[pred == true])² over labelled events
``lat_<b>``         int        labels whose latency falls in bin ``b`` of :data:`LATENCY_EDGES_SECONDS`
==================  =========  =====================================================================

Binning: bins are left-closed ``[e_i, e_{i+1})`` like ``numpy.histogram``; values beyond the outer
edges go into the outer bins (the manifest's outer bins are open-ended), so every event is counted.
The key attributes of the item (model version, window start, TTL) are the adapter's business and
must not reuse these names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pigeonhole.model.manifest import DriftBaseline

# Label latency edges in seconds: 0, then half-octave steps 1 s … 2^23 s (~97 days). Fixed (not from
# the manifest) so every window and model version shares them; √2 spacing keeps p50/p95 within ~20%.
LATENCY_EDGES_SECONDS: tuple[float, ...] = (0.0, *(float(2.0 ** (i / 2)) for i in range(47)))

_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")

ItemUpdates = dict[str, int | float]


@dataclass(frozen=True)
class CounterLayout:
    """What a window counts: number of classes and the bin edges (from the manifest baseline).

    Two windows merge only if their layouts are equal, i.e. they belong to the same model package.
    """

    n_classes: int
    confidence_edges: tuple[float, ...]
    feature_edges: Mapping[str, tuple[float, ...]]
    latency_edges: tuple[float, ...] = LATENCY_EDGES_SECONDS

    def __post_init__(self) -> None:
        if self.n_classes < 1:
            raise ValueError("a layout needs at least one class")
        _check_edges("confidence", self.confidence_edges)
        _check_edges("latency", self.latency_edges)
        for name, edges in self.feature_edges.items():
            if not _NAME_RE.match(name):
                raise ValueError(f"feature name {name!r} is not a safe attribute name ([A-Za-z0-9_], ≤ 64 chars)")
            _check_edges(f"feature {name}", edges)
        # Copy into a sorted dict of tuples: the caller's mapping cannot change the layout afterwards.
        object.__setattr__(self, "feature_edges", {k: tuple(v) for k, v in sorted(self.feature_edges.items())})

    @classmethod
    def from_baseline(cls, baseline: DriftBaseline, n_classes: int | None = None) -> CounterLayout:
        """The layout a manifest's drift baseline implies (class count from its class prior)."""
        k = len(baseline.class_prior) if n_classes is None else n_classes
        return cls(
            n_classes=k,
            confidence_edges=tuple(baseline.confidence.edges),
            feature_edges={name: tuple(h.edges) for name, h in baseline.features.items()},
        )

    @property
    def confidence_bins(self) -> int:
        return len(self.confidence_edges) - 1

    @property
    def latency_bins(self) -> int:
        return len(self.latency_edges) - 1

    def feature_bins(self, name: str) -> int:
        return len(self.feature_edges[name]) - 1


def _check_edges(what: str, edges: Iterable[float]) -> None:
    e = np.asarray(tuple(edges), dtype=np.float64)
    if e.ndim != 1 or e.size < 2:
        raise ValueError(f"{what} edges need at least two values")
    if not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
        raise ValueError(f"{what} edges must be finite and strictly increasing")


def bin_index(values: ArrayLike, edges: Iterable[float]) -> NDArray[np.int64]:
    """The bin ``[e_i, e_{i+1})`` of each value; values outside the outer edges land in the outer bins."""
    e = np.asarray(tuple(edges) if not isinstance(edges, np.ndarray) else edges, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(v)):
        raise ValueError("cannot bin non-finite values (NaN / inf); quarantine such input upstream")
    return np.clip(np.searchsorted(e, v, side="right") - 1, 0, e.size - 2).astype(np.int64)


def bin_counts(values: ArrayLike, edges: Iterable[float]) -> NDArray[np.int64]:
    """Counts per bin ``[e_i, e_{i+1})``; values outside the outer edges land in the outer bins."""
    e = np.asarray(tuple(edges), dtype=np.float64)
    return np.bincount(bin_index(values, e), minlength=e.size - 1).astype(np.int64)


def _zeros(n: int) -> NDArray[np.int64]:
    return np.zeros(n, dtype=np.int64)


def _floats(n: int) -> NDArray[np.float64]:
    return np.zeros(n, dtype=np.float64)


def _count(value: ArrayLike | int | None, n: int, what: str) -> int:
    """A count given as None (0), a number, or a boolean mask with one entry per event."""
    if value is None:
        return 0
    if np.ndim(value) == 0:
        return int(value)  # type: ignore[arg-type]
    mask = np.asarray(value, dtype=bool).ravel()
    if mask.size != n:
        raise ValueError(f"{what} mask has {mask.size} entries for {n} events")
    return int(mask.sum())


@dataclass
class WindowCounters:
    """Counters of one window (or of several merged windows). Build with :meth:`empty`,
    :meth:`from_batch` (classifier), :meth:`from_labels` (feedback) or :meth:`from_item` (DynamoDB)."""

    layout: CounterLayout
    events: int = 0
    review: int = 0
    quarantined: int = 0
    unknown: int = 0
    class_counts: NDArray[np.int64] = field(default_factory=lambda: _zeros(0))
    confidence_counts: NDArray[np.int64] = field(default_factory=lambda: _zeros(0))
    confidence_sum: float = 0.0
    confidence_sq_sum: float = 0.0
    feature_counts: dict[str, NDArray[np.int64]] = field(default_factory=dict)
    labelled: int = 0
    confusion: NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))  # [pred, true]
    labelled_confidence_counts: NDArray[np.int64] = field(default_factory=lambda: _zeros(0))
    labelled_correct_counts: NDArray[np.int64] = field(default_factory=lambda: _zeros(0))
    labelled_confidence_sum: NDArray[np.float64] = field(default_factory=lambda: _floats(0))
    brier_sum: float = 0.0
    latency_counts: NDArray[np.int64] = field(default_factory=lambda: _zeros(0))

    def __post_init__(self) -> None:
        """Fill arrays left at their defaults with zeros of the layout's shape; check the rest."""
        lay = self.layout
        k, cb = lay.n_classes, lay.confidence_bins
        self.class_counts = _shaped(self.class_counts, (k,), "class_counts", np.int64)
        self.confidence_counts = _shaped(self.confidence_counts, (cb,), "confidence_counts", np.int64)
        self.confusion = _shaped(self.confusion, (k, k), "confusion", np.int64)
        self.labelled_confidence_counts = _shaped(self.labelled_confidence_counts, (cb,), "lconf", np.int64)
        self.labelled_correct_counts = _shaped(self.labelled_correct_counts, (cb,), "lcorr", np.int64)
        self.labelled_confidence_sum = _shaped(self.labelled_confidence_sum, (cb,), "lcsum", np.float64)
        self.latency_counts = _shaped(self.latency_counts, (lay.latency_bins,), "latency_counts", np.int64)
        unknown = set(self.feature_counts) - set(lay.feature_edges)
        if unknown:
            raise ValueError(f"feature counts for features not in the layout: {sorted(unknown)}")
        self.feature_counts = {
            name: _shaped(self.feature_counts.get(name, _zeros(0)), (lay.feature_bins(name),), f"f_{name}", np.int64)
            for name in lay.feature_edges
        }

    # --- constructors ---------------------------------------------------------------------

    @classmethod
    def empty(cls, layout: CounterLayout) -> WindowCounters:
        return cls(layout=layout)

    @classmethod
    def from_batch(
        cls,
        layout: CounterLayout,
        predicted: ArrayLike,
        confidence: ArrayLike,
        features: Mapping[str, ArrayLike],
        *,
        review: ArrayLike | int | None = None,
        quarantined: int = 0,
        unknown: ArrayLike | int | None = None,
    ) -> WindowCounters:
        """Counters of one classified batch.

        ``predicted``: top-1 class index per event; ``confidence``: top-1 probability per event;
        ``features``: per-event values for every feature of the layout (extra features are ignored:
        the baseline decides what is monitored); ``review``: a boolean mask per event or a count of
        events routed to review; ``quarantined``: invalid events of the batch (not classified);
        ``unknown``: like ``review``, the events routed as unknown (a subset of review).
        """
        pred = np.asarray(predicted).ravel()
        conf = np.asarray(confidence, dtype=np.float64).ravel()
        n = int(pred.size)
        if conf.size != n:
            raise ValueError(f"{n} predictions but {conf.size} confidences")
        pred = _class_indices(pred, layout.n_classes, "predicted")
        if not np.all(np.isfinite(conf)):
            raise ValueError("confidence must be finite")
        conf = np.clip(conf, 0.0, 1.0)
        missing = set(layout.feature_edges) - set(features)
        if missing:
            raise ValueError(f"batch lacks features the baseline monitors: {sorted(missing)}")
        feature_counts: dict[str, NDArray[np.int64]] = {}
        for name, edges in layout.feature_edges.items():
            values = np.asarray(features[name], dtype=np.float64).ravel()
            if values.size != n:
                raise ValueError(f"feature {name!r} has {values.size} values for {n} events")
            feature_counts[name] = bin_counts(values, edges)
        n_review = _count(review, n, "review")
        n_unknown = _count(unknown, n, "unknown")
        if not 0 <= n_unknown <= n_review <= n or quarantined < 0:
            raise ValueError("need 0 <= unknown <= review <= events and quarantined >= 0")
        return cls(
            layout=layout,
            events=n,
            review=n_review,
            quarantined=int(quarantined),
            unknown=n_unknown,
            class_counts=np.bincount(pred, minlength=layout.n_classes).astype(np.int64),
            confidence_counts=bin_counts(conf, layout.confidence_edges),
            confidence_sum=float(conf.sum()),
            confidence_sq_sum=float(np.dot(conf, conf)),
            feature_counts=feature_counts,
        )

    @classmethod
    def from_labels(
        cls,
        layout: CounterLayout,
        predicted: ArrayLike,
        true: ArrayLike,
        confidence: ArrayLike,
        latency_seconds: ArrayLike | None = None,
    ) -> WindowCounters:
        """Label counters for predictions of this window that received feedback (joined by event id).

        ``latency_seconds`` is label time − event time per label; negative values (clock skew) count
        as 0. Only label fields are set, so ``to_item_updates`` touches only label attributes.
        """
        pred = np.asarray(predicted).ravel()
        truth = np.asarray(true).ravel()
        conf = np.asarray(confidence, dtype=np.float64).ravel()
        n = int(pred.size)
        if truth.size != n or conf.size != n:
            raise ValueError("predicted, true and confidence need one entry per label")
        pred = _class_indices(pred, layout.n_classes, "predicted")
        truth = _class_indices(truth, layout.n_classes, "true")
        if not np.all(np.isfinite(conf)):
            raise ValueError("confidence must be finite")
        conf = np.clip(conf, 0.0, 1.0)
        correct = pred == truth
        k = layout.n_classes
        confusion = np.bincount(pred * k + truth, minlength=k * k).astype(np.int64).reshape(k, k)
        edges = np.asarray(layout.confidence_edges, dtype=np.float64)
        idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, edges.size - 2)
        cb = layout.confidence_bins
        latency = _zeros(layout.latency_bins)
        if latency_seconds is not None:
            lat = np.asarray(latency_seconds, dtype=np.float64).ravel()
            if lat.size != n:
                raise ValueError(f"{lat.size} latencies for {n} labels")
            latency = bin_counts(np.maximum(lat, 0.0), layout.latency_edges)
        return cls(
            layout=layout,
            labelled=n,
            confusion=confusion,
            labelled_confidence_counts=np.bincount(idx, minlength=cb).astype(np.int64),
            labelled_correct_counts=np.bincount(idx[correct], minlength=cb).astype(np.int64),
            labelled_confidence_sum=np.bincount(idx, weights=conf, minlength=cb).astype(np.float64),
            brier_sum=float(np.sum((conf - correct.astype(np.float64)) ** 2)),
            latency_counts=latency,
        )

    # --- algebra --------------------------------------------------------------------------

    def merge(self, other: WindowCounters) -> WindowCounters:
        """Element-wise sum of two windows of the same layout (a new object; neither input changes)."""
        if other.layout != self.layout:
            raise ValueError("cannot merge windows with different layouts (different model packages?)")
        return WindowCounters(
            layout=self.layout,
            events=self.events + other.events,
            review=self.review + other.review,
            quarantined=self.quarantined + other.quarantined,
            unknown=self.unknown + other.unknown,
            class_counts=self.class_counts + other.class_counts,
            confidence_counts=self.confidence_counts + other.confidence_counts,
            confidence_sum=self.confidence_sum + other.confidence_sum,
            confidence_sq_sum=self.confidence_sq_sum + other.confidence_sq_sum,
            feature_counts={k: v + other.feature_counts[k] for k, v in self.feature_counts.items()},
            labelled=self.labelled + other.labelled,
            confusion=self.confusion + other.confusion,
            labelled_confidence_counts=self.labelled_confidence_counts + other.labelled_confidence_counts,
            labelled_correct_counts=self.labelled_correct_counts + other.labelled_correct_counts,
            labelled_confidence_sum=self.labelled_confidence_sum + other.labelled_confidence_sum,
            brier_sum=self.brier_sum + other.brier_sum,
            latency_counts=self.latency_counts + other.latency_counts,
        )

    __add__ = merge

    @classmethod
    def merge_all(cls, layout: CounterLayout, windows: Iterable[WindowCounters]) -> WindowCounters:
        """Sum any number of windows (e.g. the trailing reference); empty input gives an empty window."""
        total = cls.empty(layout)
        for w in windows:
            total = total.merge(w)
        return total

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowCounters):
            return NotImplemented
        return self.layout == other.layout and self.to_item_updates(include_zeros=True) == other.to_item_updates(
            include_zeros=True
        )

    __hash__ = None  # type: ignore[assignment]  # mutable dataclass

    # --- DynamoDB item --------------------------------------------------------------------

    def to_item_updates(self, *, include_zeros: bool = False) -> ItemUpdates:
        """Flat ``{attribute: increment}`` for one ``UpdateExpression`` of the form ``ADD #a :a, …``.

        Zero increments are left out by default: a 10-event batch touches a handful of bins, and an
        UpdateExpression is limited to 4 KB. Integers stay ``int``, sums are ``float``; the adapter
        converts floats to ``Decimal`` (e.g. ``Decimal(repr(x))``) because boto3 rejects float.
        """
        out: ItemUpdates = {}

        def put(name: str, value: int | float) -> None:
            if include_zeros or value != 0:
                out[name] = value

        put("n", int(self.events))
        put("rev", int(self.review))
        put("q", int(self.quarantined))
        put("unk", int(self.unknown))
        for i, v in enumerate(self.class_counts):
            put(f"c_{i}", int(v))
        for b, v in enumerate(self.confidence_counts):
            put(f"conf_{b}", int(v))
        put("csum", float(self.confidence_sum))
        put("csq", float(self.confidence_sq_sum))
        for name, counts in self.feature_counts.items():
            for b, v in enumerate(counts):
                put(f"f_{name}_{b}", int(v))
        put("nl", int(self.labelled))
        k = self.layout.n_classes
        if include_zeros:
            cells: Iterable[tuple[int, int]] = ((p, t) for p in range(k) for t in range(k))
        else:  # only the non-zero cells: a batch touches a few of BANKING77's 77 x 77
            cells = zip(*(a.tolist() for a in np.nonzero(self.confusion)), strict=True)
        for p, t in cells:
            put(f"cm_{p}_{t}", int(self.confusion[p, t]))
        for b in range(self.layout.confidence_bins):
            put(f"lconf_{b}", int(self.labelled_confidence_counts[b]))
            put(f"lcorr_{b}", int(self.labelled_correct_counts[b]))
            put(f"lcsum_{b}", float(self.labelled_confidence_sum[b]))
        put("brier", float(self.brier_sum))
        for b, v in enumerate(self.latency_counts):
            put(f"lat_{b}", int(v))
        return out

    @classmethod
    def from_item(cls, item: Mapping[str, Any], layout: CounterLayout) -> WindowCounters:
        """Read counters back from a DynamoDB item; missing attributes are 0, other attributes ignored.

        Accepts the resource API's ``Decimal`` values, plain ``int``/``float``/``str``, and the client
        API's ``{"N": "…"}`` wire form.
        """

        def num(name: str) -> float:
            return float(_number(item.get(name, 0), name))

        def integer(name: str) -> int:
            value = _number(item.get(name, 0), name)
            if value != value.to_integral_value():
                raise ValueError(f"attribute {name} should be an integer count, got {value}")
            return int(value)

        k, cb = layout.n_classes, layout.confidence_bins
        return cls(
            layout=layout,
            events=integer("n"),
            review=integer("rev"),
            quarantined=integer("q"),
            unknown=integer("unk"),
            class_counts=np.array([integer(f"c_{i}") for i in range(k)], dtype=np.int64),
            confidence_counts=np.array([integer(f"conf_{b}") for b in range(cb)], dtype=np.int64),
            confidence_sum=num("csum"),
            confidence_sq_sum=num("csq"),
            feature_counts={
                name: np.array([integer(f"f_{name}_{b}") for b in range(layout.feature_bins(name))], dtype=np.int64)
                for name in layout.feature_edges
            },
            labelled=integer("nl"),
            confusion=np.array([[integer(f"cm_{p}_{t}") for t in range(k)] for p in range(k)], dtype=np.int64),
            labelled_confidence_counts=np.array([integer(f"lconf_{b}") for b in range(cb)], dtype=np.int64),
            labelled_correct_counts=np.array([integer(f"lcorr_{b}") for b in range(cb)], dtype=np.int64),
            labelled_confidence_sum=np.array([num(f"lcsum_{b}") for b in range(cb)], dtype=np.float64),
            brier_sum=num("brier"),
            latency_counts=np.array([integer(f"lat_{b}") for b in range(layout.latency_bins)], dtype=np.int64),
        )

    # --- convenience views ----------------------------------------------------------------

    @property
    def correct(self) -> int:
        """Labelled events predicted correctly (the confusion trace)."""
        return int(np.trace(self.confusion))

    def confusion_pairs(self) -> dict[tuple[int, int], int]:
        """Non-zero confusion counts as ``{(pred, true): count}``."""
        return {(int(p), int(t)): int(self.confusion[p, t]) for p, t in zip(*np.nonzero(self.confusion), strict=True)}


def _shaped(values: ArrayLike, shape: tuple[int, ...], name: str, dtype: type[Any]) -> NDArray[Any]:
    arr = np.asarray(values, dtype=dtype)
    if arr.size == 0 and any(s > 0 for s in shape):
        return np.zeros(shape, dtype=dtype)
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}, the layout needs {shape}")
    if np.any(arr < 0):
        raise ValueError(f"{name} holds negative counts")
    return arr.copy()


def _class_indices(values: NDArray[Any], n_classes: int, what: str) -> NDArray[np.int64]:
    if values.size == 0:
        return values.astype(np.int64)
    if not np.issubdtype(values.dtype, np.integer):
        as_float = values.astype(np.float64)
        if not np.all(np.isfinite(as_float)) or np.any(as_float != np.round(as_float)):
            raise ValueError(f"{what} class indices must be integers")
    idx = values.astype(np.int64)
    if np.any(idx < 0) or np.any(idx >= n_classes):
        raise ValueError(f"{what} class index outside 0..{n_classes - 1}")
    return idx


def _number(value: Any, name: str) -> Decimal:
    """An attribute value as an exact Decimal (ints beyond 2**53 stay exact; floats convert exactly)."""
    if isinstance(value, Mapping):
        if "N" not in value:
            raise ValueError(f"attribute {name} is not a number: {value!r}")
        value = value["N"]
    if isinstance(value, bool):
        raise ValueError(f"attribute {name} is a boolean, not a number")
    if not isinstance(value, int | float | Decimal | str):
        raise ValueError(f"attribute {name} has unsupported type {type(value).__name__}")
    try:
        result = Decimal(value)
    except ArithmeticError as exc:
        raise ValueError(f"attribute {name} is not a number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"attribute {name} is not finite")
    return result
