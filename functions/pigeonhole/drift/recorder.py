"""Window counters and prediction capture, written by the classifier once per batch, exactly once per event.

Why exactly once: SQS delivers at least once (redelivery after a partial failure, after a crash, after
a visibility timeout) and EventBridge may duplicate; a window that counts an event twice lies about
class mix and confidence. So every event owns a marker item in the predictions table
(``P#<version>#<event id>``, created only if absent) that travels in one DynamoDB transaction with the
``ADD`` of its window's counters (see :meth:`DynamoDBAdapter.commit_once`). The marker doubles as the
prediction capture when the event is sampled. Quarantined events are counted in the window of their
arrival (their time may be unreadable), exactly once by ``Q#<version>#E#<event id>`` or, without a
usable id, ``Q#<version>#M#<message id>``. Design and cost: ``docs/monitoring.md``.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from aws_lambda_powertools import Logger

from pigeonhole.adapters.dynamodb import CounterUpdate, DynamoDBAdapter, Marker, serialize_item
from pigeonhole.capture import CapturePolicy
from pigeonhole.classify.contract import Reason
from pigeonhole.classify.routing import Classification
from pigeonhole.drift import layout as keys
from pigeonhole.drift.counters import CounterLayout, WindowCounters
from pigeonhole.model.features import input_features, normalize_text
from pigeonhole.model.manifest import Manifest
from pigeonhole.model.runtime import ModelRuntime

REGISTRY_REFRESH_SECONDS = 86_400  # re-register daily: the entry's TTL follows the captures'
MAX_KEY_BYTES = 2048  # DynamoDB partition key


@dataclass(frozen=True)
class _Unit:
    """One thing to count once: a classified event or a quarantined record."""

    message_ids: tuple[str, ...]  # the first record and its in-batch duplicates
    marker: Marker
    window: str
    predicted: int = -1  # -1: quarantined
    confidence: float = 0.0
    review: bool = False
    features: Mapping[str, float] | None = None


class WindowRecorder:
    """A :class:`~pigeonhole.classify.service.BatchObserver`: counts each batch into its windows.

    ``store`` wraps the DynamoDB client; the windows table holds counters, the predictions table the
    markers/captures. ``window_seconds`` must equal the classifier's (the windows are its output's
    ``window`` ids). ``shards`` > 1 spreads each window over several items to cut transaction
    conflicts on a hot window item; readers merge them. ``clock`` returns epoch seconds.
    """

    def __init__(
        self,
        store: DynamoDBAdapter,
        windows_table: str,
        predictions_table: str,
        *,
        window_seconds: int = 300,
        capture: CapturePolicy | None = None,  # None: capture every prediction
        capture_ttl_days: int = 14,
        window_ttl_days: int = 90,
        shards: int = 1,
        register_model: bool = False,
        logger: Logger | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if window_seconds < 1 or shards < 1:
            raise ValueError("window_seconds and shards must be >= 1")
        self.store = store
        self.windows_table = windows_table
        self.predictions_table = predictions_table
        self.window_seconds = window_seconds
        self.capture = capture or CapturePolicy.everything()
        self.capture_ttl_days = capture_ttl_days
        self.window_ttl_days = window_ttl_days
        self.shards = shards
        self.logger = logger or Logger(service="classifier", child=True)
        self.clock = clock
        self._rng = rng or random.Random()  # shard choice, not crypto
        self._layouts: dict[str, CounterLayout] = {}
        self.register_model = register_model  # the classifier handler turns it on (M#models, for feedback)
        self._registered: dict[str, float] = {}  # model version → when this container registered it

    def layout(self, manifest: Manifest) -> CounterLayout:
        if manifest.version not in self._layouts:
            self._layouts[manifest.version] = keys.counter_layout(manifest)
        return self._layouts[manifest.version]

    # -- BatchObserver ---------------------------------------------------------------------------
    def observe(
        self,
        classified: Sequence[tuple[str, Classification]],
        quarantined: Sequence[tuple[str, Reason]],
        runtime: ModelRuntime,
        deadline: float | None = None,
    ) -> dict[str, str]:
        """Count the batch; return {message_id: error} for records SQS must deliver again.

        Only the environment fails a record here (a transaction that did not land, time running out
        before ``deadline``, a monotonic time); a unit whose own content cannot be counted (a window
        past the calendar's end, a value DynamoDB cannot store) is skipped and logged, never retried.
        """
        manifest = runtime.manifest
        layout = self.layout(manifest)
        now = self.clock()
        self._register(manifest, now)
        units = self._units(classified, quarantined, runtime, now)
        if not units:
            return {}
        version = manifest.version

        def build(indices: Sequence[int]) -> list[CounterUpdate]:
            return self._window_updates([units[i] for i in indices], layout, version)

        result = self.store.commit_once([u.marker for u in units], build, deadline=deadline)
        failures: dict[str, str] = {}
        for i, error in result.failed.items():
            for message_id in units[i].message_ids:
                failures[message_id] = error
        duplicates = sum(len(units[i].message_ids) for i in result.duplicates) + sum(
            len(u.message_ids) - 1 for u in units
        )
        self.logger.debug(
            "window counters written",
            extra={
                "counted": len(result.committed),
                "already_counted": duplicates,
                "failed": len(failures),
                "transactions": result.transactions,
            },
        )
        if failures:
            self.logger.warning(
                "window counters not written; SQS will deliver these records again",
                extra={"failed": len(failures), "error": next(iter(failures.values()))},
            )
        return failures

    def _register(self, manifest: Manifest, now: float) -> None:
        """Record this model version in ``M#models`` (once per container and day) so feedback can join
        labels to its predictions after the next deploy. Best effort: a failure is logged and retried
        with the next batch; it never fails the batch (the current version is always joined anyway)."""
        last = self._registered.get(manifest.version)
        if not self.register_model or (last is not None and now - last < REGISTRY_REFRESH_SECONDS):
            return
        update = CounterUpdate(
            table=self.windows_table,
            key={keys.PK: keys.MODELS_PK, keys.SK: manifest.version},
            add={},
            set=keys.registry_item(manifest, now, self.capture_ttl_days),
        )
        try:
            self.store.update(update)
        except Exception:
            self.logger.exception("could not register the model version; retried with the next batch")
            return
        self._registered[manifest.version] = now

    # -- building units --------------------------------------------------------------------------
    def _units(
        self,
        classified: Sequence[tuple[str, Classification]],
        quarantined: Sequence[tuple[str, Reason]],
        runtime: ModelRuntime,
        now: float,
    ) -> list[_Unit]:
        version = runtime.manifest.version
        ttl = keys.expires_at(now, self.capture_ttl_days)
        by_key: dict[str, list[str]] = defaultdict(list)
        first: dict[str, tuple[str, Any]] = {}
        for message_id, c in classified:
            key = keys.prediction_pk(version, c.event.id)
            by_key[key].append(message_id)
            first.setdefault(key, (message_id, c))
        arrival_window = keys.window_of(now, self.window_seconds)
        for message_id, reason in quarantined:
            key = keys.quarantine_pk(version, reason.event_id, message_id)
            by_key[key].append(message_id)
            first.setdefault(key, (message_id, reason))

        units: list[_Unit] = []
        skipped: Counter[str] = Counter()
        for key, (_, item) in first.items():
            ids = tuple(by_key[key])
            try:
                unit = self._unit(key, ids, item, runtime, version, ttl, arrival_window)
                self._check(unit)
            except Exception as exc:  # this unit's own content: skip it, count the rest
                skipped[type(exc).__name__] += len(ids)
                continue
            units.append(unit)
        if skipped:
            self.logger.error("records not counted: their content cannot be counted", extra={"skipped": dict(skipped)})
        return units

    def _unit(
        self,
        key: str,
        ids: tuple[str, ...],
        item: Classification | Reason,
        runtime: ModelRuntime,
        version: str,
        ttl: int,
        arrival_window: str,
    ) -> _Unit:
        if isinstance(item, Classification):
            features = input_features([normalize_text(item.event.model_input)], runtime.vocabulary)
            return _Unit(
                message_ids=ids,
                marker=Marker(self.predictions_table, self._prediction_marker(key, item, version, ttl)),
                window=item.window,
                predicted=item.label_index,
                confidence=item.confidence,
                review=item.route == "review",
                features={name: float(values[0]) for name, values in features.items()},
            )
        marker = {keys.PK: key, keys.TTL: ttl, "kind": "quarantine", "window": arrival_window, "reason": item.code}
        return _Unit(message_ids=ids, marker=Marker(self.predictions_table, marker), window=arrival_window)

    def _check(self, unit: _Unit) -> None:
        """Raise now, for this unit alone, what would otherwise raise for the whole batch in the transaction:
        an item DynamoDB cannot store, a window whose TTL falls past the calendar's end."""
        serialize_item(unit.marker.item)
        if len(unit.marker.key.encode("utf-8")) > MAX_KEY_BYTES:
            raise ValueError("marker key exceeds the DynamoDB partition key limit")
        keys.expires_at(keys.parse_iso(unit.window), self.window_ttl_days)
        serialize_item({"confidence": unit.confidence, **(unit.features or {})})

    def _prediction_marker(self, key: str, c: Classification, version: str, ttl: int) -> dict[str, Any]:
        """The dedup marker; with the prediction (a capture) when the policy captures it, and its
        sampling weight (1 / rate of its route) for the inverse-probability-weighted accuracy estimates."""
        item: dict[str, Any] = {keys.PK: key, keys.TTL: ttl, "kind": "prediction", "window": c.window}
        weight = self.capture.weight(c.event.id, c.route)
        if weight is not None:
            item.update(
                captured=True,
                weight=weight,
                event_id=c.event.id,
                model_version=version,
                event_time=keys.iso(c.event.time),
                label=c.label,
                label_index=c.label_index,
                confidence=c.confidence,
                route=c.route,
            )
        else:
            item["captured"] = False
        return item

    # -- aggregation -----------------------------------------------------------------------------
    def _window_updates(self, units: Sequence[_Unit], layout: CounterLayout, version: str) -> list[CounterUpdate]:
        """One ADD per window touched by ``units`` (at most one write per window per transaction)."""
        per_window: dict[str, list[_Unit]] = defaultdict(list)
        for u in units:
            per_window[u.window].append(u)
        updates = []
        for window, members in sorted(per_window.items()):
            events = [u for u in members if u.predicted >= 0]
            counters = WindowCounters.from_batch(
                layout,
                predicted=np.array([u.predicted for u in events], dtype=np.int64),
                confidence=np.array([u.confidence for u in events], dtype=np.float64),
                features={
                    name: np.array([(u.features or {})[name] for u in events], dtype=np.float64)
                    for name in layout.feature_edges
                },
                review=np.array([u.review for u in events], dtype=bool),
                quarantined=len(members) - len(events),
            )
            updates.append(self._counter_update(window, counters, version))
        return updates

    def _counter_update(self, window: str, counters: WindowCounters, version: str) -> CounterUpdate:
        shard = self._rng.randrange(self.shards) if self.shards > 1 else 0
        return window_update(self.windows_table, version, window, counters, shard, self.shards, self.window_ttl_days)


def window_update(
    table: str, version: str, window: str, counters: WindowCounters, shard: int, shards: int, ttl_days: int
) -> CounterUpdate:
    """The ADD of some counters to a window item (shared by the recorder and the feedback service)."""
    return CounterUpdate(
        table=table,
        key={keys.PK: keys.window_pk(version), keys.SK: keys.window_sk(window, shard, shards)},
        add=counters.to_item_updates(),
        set={keys.ATTR_MODEL_VERSION: version, keys.ATTR_WINDOW_START: window},
        set_if_absent={keys.TTL: keys.expires_at(keys.parse_iso(window), ttl_days)},
    )
