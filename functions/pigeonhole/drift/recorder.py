"""Window counters and prediction capture, written by the classifier once per batch, exactly once per event.

Why exactly once: SQS delivers at least once (redelivery after a partial failure, after a crash, after
a visibility timeout) and EventBridge may duplicate; a window that counts an event twice lies about
class mix and confidence. Each batch writes, per window it touches, one idempotent batch item
(:mod:`pigeonhole.drift.batches`) with one record per unit, identified by a digest of its dedup key
``P#<version>#<event id>``; the drift function merges a closed window's items counting each digest
once (:mod:`pigeonhole.drift.compaction`). One plain ``PutItem`` per batch and window: ≈ 0.1 write
units per event at batch 10, no transaction to conflict. Quarantined events are counted in the window
of their arrival (their time may be unreadable: SQS's SentTimestamp, which a redelivery keeps), once by
``Q#<version>#E#<event id>`` or, without a usable id, ``Q#<version>#M#<message id>``. Captured
predictions (``P#…`` items in the predictions table) are plain idempotent puts of the sampled events.
Design and cost: ``docs/monitoring.md``.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from pigeonhole.adapters.dynamodb import CounterUpdate, DynamoDBAdapter, IncompleteWriteError, Marker, check_item
from pigeonhole.capture import CapturePolicy
from pigeonhole.classify.contract import Reason
from pigeonhole.classify.routing import Classification
from pigeonhole.drift import batches
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
    unknown: bool = False  # routed to review as unknown (the unknown score fired)
    features: Mapping[str, float] | None = None


class WindowRecorder:
    """A :class:`~pigeonhole.classify.service.BatchObserver`: counts each batch into its windows.

    ``store`` wraps the DynamoDB client; the windows table holds batch items, the predictions table the
    captures. ``window_seconds`` must equal the classifier's (the windows are its output's ``window``
    ids). ``shards`` (the stack's ``window_shards``, the same for every function) spreads a window's
    batch items over that many partitions; the drift function reads them all. ``clock`` returns epoch
    seconds.
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
        arrivals: Mapping[str, float] | None = None,
    ) -> dict[str, str]:
        """Count the batch; return {message_id: error} for records SQS must deliver again.

        ``arrivals`` (epoch seconds by message id, SentTimestamp) places quarantined records in the window of
        their arrival, the same on every redelivery; a record without one is placed by the clock.

        Only the environment fails a record here (a transaction that did not land, time running out
        before ``deadline``, a monotonic time); a unit whose own content cannot be counted (a window
        past the calendar's end, a value DynamoDB cannot store) is skipped and logged, never retried.
        """
        manifest = runtime.manifest
        layout = self.layout(manifest)
        now = self.clock()
        self._register(manifest, now)
        units = self._units(classified, quarantined, runtime, now, arrivals or {})
        if not units:
            return {}
        version = manifest.version
        failures: dict[str, str] = {}
        environment = (ClientError, BotoCoreError, IncompleteWriteError)  # SQS delivers those records again
        # Captures first, then each window's item last: a record is counted only by its final write, so
        # a record that fails was not counted in this attempt (the accounting of a dead-lettered event).
        captures = [u for u in units if u.marker.item.get("captured")]
        if captures:
            try:
                self.store.put_all(self.predictions_table, [u.marker.item for u in captures], deadline=deadline)
            except environment as exc:
                error = f"captures not written: {type(exc).__name__}: {exc}"[:500]
                failures.update((m, error) for u in captures for m in u.message_ids)
        per_window: dict[str, list[_Unit]] = defaultdict(list)
        for u in units:
            if u.message_ids[0] not in failures:
                per_window[u.window].append(u)
        written = pointers = 0
        for window, members in sorted(per_window.items()):
            try:
                pointers += self._write_window(layout, version, window, members, now, deadline)
            except environment as exc:
                error = f"window items not written: {type(exc).__name__}: {exc}"[:500]
                failures.update((m, error) for u in members for m in u.message_ids)
                continue
            written += 1
        self.logger.debug(
            "window batch items written",
            extra={
                "units": len(units),
                "in_batch_duplicates": sum(len(u.message_ids) - 1 for u in units),
                "windows": written,
                "late_pointers": pointers,
                "captures": len(captures),
                "failed": len(failures),
            },
        )
        if failures:
            self.logger.warning(
                "window counters not written; SQS will deliver these records again",
                extra={"failed": len(failures), "error": next(iter(failures.values()))},
            )
        return failures

    def _write_window(
        self,
        layout: CounterLayout,
        version: str,
        window: str,
        members: Sequence[_Unit],
        now: float,
        deadline: float | None,
    ) -> int:
        """The batch's late pointer (if the window has ended), then its item(s) of the window. Pointer first:
        the item is the record's last write, and the drift function counts a pointer only once it has
        read the item behind it (:func:`pigeonhole.drift.compaction.compact_closed`)."""
        contributions = [
            batches.Contribution(u.marker.key, u.predicted, u.confidence, u.review, u.features, u.unknown)
            for u in members
        ]
        ttl = keys.expires_at(now, self.capture_ttl_days)  # as long as a redelivery can arrive
        items = batches.window_items(layout, version, window, contributions, shards=self.shards, expires_at=ttl)
        late = now >= keys.parse_iso(window).timestamp() + self.window_seconds
        if late:
            pointer = batches.late_pointer(version, str(items[0][keys.SK]), int(now), ttl)
            self.store.put(self.windows_table, pointer, deadline=deadline)
        for item in items:
            self.store.put(self.windows_table, item, deadline=deadline)
        return int(late)

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
        arrivals: Mapping[str, float],
    ) -> list[_Unit]:
        version = runtime.manifest.version
        ttl = keys.expires_at(now, self.capture_ttl_days)
        by_key: dict[str, list[str]] = defaultdict(list)
        first: dict[str, tuple[str, Any]] = {}
        for message_id, c in classified:
            key = keys.prediction_pk(version, c.event.id)
            by_key[key].append(message_id)
            first.setdefault(key, (message_id, c))
        for message_id, reason in quarantined:
            key = keys.quarantine_pk(version, reason.event_id, message_id)
            by_key[key].append(message_id)
            first.setdefault(key, (message_id, reason))

        features = self._features([item for _, item in first.values()], runtime)
        units: list[_Unit] = []
        skipped: Counter[str] = Counter()
        for key, (message_id, item) in first.items():
            ids = tuple(by_key[key])
            try:
                arrival_window = keys.window_of(arrivals.get(message_id, now), self.window_seconds)
                unit = self._unit(key, ids, item, runtime, version, ttl, arrival_window, features)
                self._check(unit)
            except Exception as exc:  # this unit's own content: skip it, count the rest
                skipped[type(exc).__name__] += len(ids)
                continue
            units.append(unit)
        if skipped:
            self.logger.error("records not counted: their content cannot be counted", extra={"skipped": dict(skipped)})
        return units

    @staticmethod
    def _features(items: Sequence[Classification | Reason], runtime: ModelRuntime) -> dict[int, dict[str, float]]:
        """Drift features of the batch's classified events in one pass, by ``id()`` of their classification.
        Empty when the pass fails: each unit then computes its own, so a failure stays that unit's."""
        classified = [c for c in items if isinstance(c, Classification)]
        if not classified:
            return {}
        try:
            texts = [normalize_text(c.event.model_input) for c in classified]
            columns = input_features(texts, runtime.vocabulary)
            return {
                id(c): {name: float(values[i]) for name, values in columns.items()} for i, c in enumerate(classified)
            }
        except Exception:
            return {}

    def _unit(
        self,
        key: str,
        ids: tuple[str, ...],
        item: Classification | Reason,
        runtime: ModelRuntime,
        version: str,
        ttl: int,
        arrival_window: str,
        batch_features: Mapping[int, dict[str, float]] | None = None,
    ) -> _Unit:
        if isinstance(item, Classification):
            features = (batch_features or {}).get(id(item))
            if features is None:
                columns = input_features([normalize_text(item.event.model_input)], runtime.vocabulary)
                features = {name: float(values[0]) for name, values in columns.items()}
            return _Unit(
                message_ids=ids,
                marker=Marker(self.predictions_table, self._prediction_marker(key, item, version, ttl)),
                window=item.window,
                predicted=item.label_index,
                confidence=item.confidence,
                review=item.route == "review",
                unknown=item.route_reason == "unknown",
                features=features,
            )
        marker = {keys.PK: key, keys.TTL: ttl, "kind": "quarantine", "window": arrival_window, "reason": item.code}
        return _Unit(message_ids=ids, marker=Marker(self.predictions_table, marker), window=arrival_window)

    def _check(self, unit: _Unit) -> None:
        """Raise now, for this unit alone, what would otherwise raise for the whole batch in its writes:
        an item DynamoDB cannot store, a window whose TTL falls past the calendar's end. Checked without
        building the wire form (:func:`~pigeonhole.adapters.dynamodb_values.check_item`): a capture is
        serialized once, when it is written, and the rest never is."""
        check_item(unit.marker.item)
        if len(unit.marker.key.encode("utf-8")) > MAX_KEY_BYTES:
            raise ValueError("marker key exceeds the DynamoDB partition key limit")
        keys.expires_at(keys.parse_iso(unit.window), self.window_ttl_days)
        check_item({"confidence": unit.confidence, **(unit.features or {})})

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
