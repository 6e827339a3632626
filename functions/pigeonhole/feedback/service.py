"""Join true labels to captured predictions and add them to their windows' confusion counts, exactly once.

A label arrives as ``{"id": <event id>, "label": <class>}`` on the feedback queue, directly or as the
``detail`` of an EventBridge envelope with detail-type ``LabelFeedback``. It is joined by event id to
the prediction capture of whichever model version classified the event: the current version and every
version the classifier registered in ``M#models`` whose captures may still exist (``P#<version>#<id>``,
one consistent batch read), so a deploy does not orphan the previous version's predictions. The label is
added to the label counters of the *prediction's* version and window (``WindowCounters.from_labels``
with that version's classes and bins). Exactly once: a marker ``L#<captured version>#<id>`` in the
feedback table is created in the same transaction as the ``ADD``, so a redelivered or duplicated label
is recognised and skipped; the first label of an event wins. The ``ADD`` also carries the capture's
sampling weight per route, for unbiased accuracy estimates (:mod:`pigeonhole.feedback.estimates`).

A label can overtake its prediction (the classifier's batch is still being retried). A label whose id
matches no prediction yet is returned to SQS as a batch item failure (``pending``) while the message is
younger than ``retry_unknown_seconds`` (from ``ApproximateFirstReceiveTimestamp``) and has receives left
before the dead-letter queue (``ApproximateReceiveCount``); after that it is ``unknown_id``.

Nothing is dropped silently. Labels that cannot be joined are logged and counted in a per-day item
(``U#<version>`` / ``<YYYY-MM-DD>``: ``unknown_id``, ``unknown_label``, ``not_captured``, ``invalid``,
``relabel``) and in the FeedbackUnmatched metric, then acknowledged: a body that does not parse will not
get better by retrying. Only a failed read or write, or a label still waiting for its prediction, is
retried (SQS).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pigeonhole import metrics_catalog as mc
from pigeonhole.adapters.dynamodb import CounterUpdate, DynamoDBAdapter, Marker
from pigeonhole.capture import CapturePolicy
from pigeonhole.drift import layout as keys
from pigeonhole.drift.counters import WindowCounters
from pigeonhole.drift.layout import RegisteredModel
from pigeonhole.drift.recorder import window_update
from pigeonhole.entry.batch import partial_batch_response
from pigeonhole.exceptions import PublishError
from pigeonhole.feedback.estimates import WeightedLabels, capture_weight
from pigeonhole.feedback.messages import LabelMessage, parse_label
from pigeonhole.model.manifest import Manifest
from pigeonhole.naming import MAX_RECEIVE_COUNT

FeedbackStatus = Literal[
    "labelled", "duplicate", "unknown_id", "unknown_label", "not_captured", "invalid", "pending", "failed"
]
# Statuses that mean "a label we could not use"; FeedbackUnmatched counts the first three.
UNMATCHED_METRIC_STATUSES: frozenset[FeedbackStatus] = frozenset({"unknown_id", "unknown_label", "invalid"})
REGISTRY_MAX_AGE_SECONDS = 300.0  # re-read M#models at least this often (and sooner when a label misses)
REGISTRY_MIN_AGE_SECONDS = 30.0  # ... but not more often than this, whatever misses


@dataclass
class FeedbackOutcome:
    """What became of one feedback record; ``error`` set means SQS must deliver it again."""

    status: FeedbackStatus
    event_id: str | None = None
    label: str | None = None
    detail: str | None = None
    error: str | None = None
    misclassified: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Join:
    """A label joined to its prediction: one unit to count once."""

    message_ids: tuple[str, ...]
    label: LabelMessage
    model: RegisteredModel  # the version that made (and captured) the prediction
    true_index: int
    predicted: int
    confidence: float
    window: str
    latency_seconds: float
    route: str = "auto"
    weight: float = 1.0  # 1 / the capture rate of the prediction's route


class FeedbackService:
    """Feedback for one model version (the manifest's). ``store`` wraps the DynamoDB client."""

    def __init__(
        self,
        store: DynamoDBAdapter,
        manifest: Manifest,
        windows_table: str,
        predictions_table: str,
        feedback_table: str,
        *,
        window_ttl_days: int = 90,
        marker_ttl_days: int = 14,
        shards: int = 1,
        retry_unknown_seconds: int = 0,  # 0: no retry; the handler passes the setting (600 s by default)
        capture: CapturePolicy | None = None,  # the classifier's policy (None: everything is captured)
        max_receive_count: int = MAX_RECEIVE_COUNT,
        logger: Logger | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.version = manifest.version
        self.current = RegisteredModel.from_manifest(manifest)
        self.layout = self.current.layout
        self.class_index = self.current.class_index
        self.retry_unknown_seconds = retry_unknown_seconds
        self.capture = capture or CapturePolicy.everything()
        self.max_receive_count = max_receive_count
        self._models: dict[str, RegisteredModel] = {}  # other versions, from M#models
        self._models_read_at: float | None = None
        self.windows_table = windows_table
        self.predictions_table = predictions_table
        self.feedback_table = feedback_table
        self.window_ttl_days = window_ttl_days
        self.marker_ttl_days = marker_ttl_days
        self.shards = shards
        self.logger = logger or Logger(service=mc.SERVICE_FEEDBACK, child=True)
        self.clock = clock
        self._rng = rng or random.Random()  # shard choice, not crypto

    # -- the Lambda entry point ------------------------------------------------------------------
    def handle(self, event: dict[str, Any], context: LambdaContext | None) -> PartialItemFailureResponse:
        if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
            raise ValueError("the feedback function accepts SQS event source mapping events only (a 'Records' list)")
        outcomes = self.process(event["Records"])
        done: list[FeedbackOutcome] = []

        def finish(record: SQSRecord) -> str:
            outcome = outcomes[record.message_id]
            if not self._log(record.message_id, outcome):
                done.append(outcome)
            if outcome.error is not None:
                raise PublishError(outcome.error)
            return outcome.status

        response = partial_batch_response(event, finish, context)
        self._log_batch(len(outcomes), done)
        return response

    # -- the work --------------------------------------------------------------------------------
    def process(self, records: Sequence[dict[str, Any]]) -> dict[str, FeedbackOutcome]:
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        outcomes: dict[str, FeedbackOutcome] = {}
        candidates: dict[str, list[tuple[str, LabelMessage]]] = defaultdict(list)  # event id → records
        for record in records:
            message_id = record["messageId"]
            parsed = parse_label(record, now)
            if isinstance(parsed, str):
                outcomes[message_id] = FeedbackOutcome("invalid", detail=parsed)
            else:  # the label is checked against the classes of the version that made the prediction
                candidates[parsed.event_id].append((message_id, parsed))

        joins = self._join(candidates, outcomes, now)
        self._commit(joins, outcomes, now)
        self._count_unmatched(outcomes, now)
        self._emit_metrics(outcomes)
        return outcomes

    def _versions(self, refresh: bool) -> list[RegisteredModel]:
        """The current version first, then the others in ``M#models`` (newest registration first)."""
        now = self.clock()
        age = None if self._models_read_at is None else now - self._models_read_at
        if age is None or age >= REGISTRY_MAX_AGE_SECONDS or (refresh and age >= REGISTRY_MIN_AGE_SECONDS):
            items = self.store.query(self.windows_table, keys.MODELS_PK)
            items.sort(key=lambda i: str(i.get("registered_at", "")), reverse=True)
            models: dict[str, RegisteredModel] = {}
            for item in items:
                version = str(item.get(keys.ATTR_MODEL_VERSION, ""))
                if not version or version == self.version or int(item.get(keys.TTL, now + 1)) <= now:
                    continue  # TTL deletion lags; an expired entry's captures are gone too
                try:
                    models[version] = RegisteredModel.from_item(item)
                except (KeyError, TypeError, ValueError):
                    self.logger.warning("unreadable model registry entry; skipped", extra={"model_version": version})
            self._models, self._models_read_at = models, now
        return [self.current, *self._models.values()]

    def _lookup(
        self, event_ids: Sequence[str], models: Sequence[RegisteredModel]
    ) -> dict[str, list[tuple[RegisteredModel, dict[str, Any]]]]:
        """Every version's capture of each event id (in ``models`` order), one batch read."""
        pks = {(m.version, e): keys.prediction_pk(m.version, e) for m in models for e in event_ids}
        found = self.store.batch_get(self.predictions_table, [{keys.PK: k} for k in pks.values()])
        return {e: [(m, found[pks[(m.version, e)]]) for m in models if pks[(m.version, e)] in found] for e in event_ids}

    def _find(
        self, event_ids: list[str]
    ) -> tuple[list[RegisteredModel], dict[str, list[tuple[RegisteredModel, dict[str, Any]]]]]:
        models = self._versions(refresh=False)
        matches = self._lookup(event_ids, models)
        missing = [e for e, m in matches.items() if not m]
        if missing:  # a version registered since the last read? (at most every REGISTRY_MIN_AGE_SECONDS)
            again = self._versions(refresh=True)
            if [m.version for m in again] != [m.version for m in models]:
                matches.update(self._lookup(missing, again))
                models = again
        return models, matches

    def _join(
        self, candidates: dict[str, list[tuple[str, LabelMessage]]], outcomes: dict[str, FeedbackOutcome], now: datetime
    ) -> list[_Join]:
        if not candidates:
            return []
        try:
            models, matches = self._find(list(candidates))
        except Exception as exc:  # a read failure is worth a retry, unlike an unknown id
            self.logger.exception("prediction lookup failed; SQS will deliver these labels again")
            for records in candidates.values():
                for message_id, label in records:
                    outcomes[message_id] = FeedbackOutcome(
                        "failed", label.event_id, label.label, error=f"lookup failed: {exc}"
                    )
            return []
        joins: list[_Join] = []
        for event_id, records in candidates.items():
            first = records[0][1]
            # In-batch duplicates share the first label's fate (set once the transaction is done).
            message_ids = tuple(m for m, _ in records)
            for _, label in records[1:]:
                if label.label != first.label:
                    self.logger.warning(
                        "conflicting labels for one event in one batch; the first wins",
                        extra={"event_id": event_id, "kept": first.label, "ignored": label.label},
                    )
            found = matches.get(event_id, [])
            # A captured prediction wins over a counted-only marker; among captures, the current version.
            captured = [(m, c) for m, c in found if c.get("captured")]
            best = next(iter(captured or found), None)
            status: FeedbackStatus | None
            if best is None:
                status, detail = self._no_prediction(first, models, now)
            else:
                status, detail = self._unusable(first, *best)
            if status is not None:
                error = (
                    "label arrived before its prediction; SQS will deliver it again" if status == "pending" else None
                )
                for message_id, label in records:
                    outcomes[message_id] = FeedbackOutcome(status, event_id, label.label, detail=detail, error=error)
                continue
            assert best is not None
            model, capture = best
            event_time = keys.parse_iso(str(capture["event_time"]))
            joins.append(
                _Join(
                    message_ids=message_ids,
                    label=first,
                    model=model,
                    true_index=model.class_index[first.label],
                    predicted=int(capture["label_index"]),
                    confidence=float(capture["confidence"]),
                    window=str(capture["window"]),
                    latency_seconds=(first.arrived - event_time).total_seconds(),
                    route=str(capture["route"]),
                    weight=capture_weight(capture),
                )
            )
        return joins

    def _no_prediction(
        self, label: LabelMessage, models: Sequence[RegisteredModel], now: datetime
    ) -> tuple[FeedbackStatus, str]:
        """No version has a prediction for this id. The classifier writes nothing per event it does not
        capture, so: an id no route captures is ``not_captured`` at once; otherwise wait (bounded) for the
        capture; after that, an id only some routes capture was most likely not captured, any other is
        unknown."""
        if not self.capture.may_capture(label.event_id):
            return "not_captured", "the capture policy captures this id on no route"
        if self._may_retry(label, now):
            return "pending", "no prediction for this id yet"
        detail = f"no prediction of model versions {', '.join(m.version for m in models)} for this id"
        if label.first_received is not None:
            waited = (now - label.first_received).total_seconds()
            detail += f" after {waited:.0f} s and {label.receive_count} receives"
        if not self.capture.always_captures(label.event_id):
            return "not_captured", detail + "; the policy captures this id on some routes only"
        return "unknown_id", detail

    @staticmethod
    def _unusable(
        label: LabelMessage, model: RegisteredModel, capture: dict[str, Any]
    ) -> tuple[FeedbackStatus | None, str]:
        """Why a found prediction cannot take this label (None: it can)."""
        if not capture.get("captured"):
            return "not_captured", "prediction was counted but not sampled for capture"
        if not 0 <= int(capture.get("label_index", -1)) < model.layout.n_classes:
            return "unknown_id", "captured prediction does not fit its model's classes"
        if not capture_weight(capture) >= 1.0:  # NaN: no valid route or weight
            return "unknown_id", "captured prediction has no valid route or sampling weight"
        if label.label not in model.class_index:
            return "unknown_label", f"label is not a class of this model (version {model.version})"
        return None, ""

    def _may_retry(self, label: LabelMessage, now: datetime) -> bool:
        """Whether a label without a prediction goes back to SQS: younger than the bound, and a receive
        left before the queue's redrive (the last receive counts it as unmatched instead)."""
        if self.retry_unknown_seconds <= 0 or label.receive_count >= self.max_receive_count:
            return False
        since = label.first_received or label.arrived
        return (now - since).total_seconds() < self.retry_unknown_seconds

    def _commit(self, joins: list[_Join], outcomes: dict[str, FeedbackOutcome], now: datetime) -> None:
        if not joins:
            return
        ttl = keys.expires_at(now, self.marker_ttl_days)
        markers = [
            Marker(
                self.feedback_table,
                {
                    keys.PK: keys.label_pk(j.model.version, j.label.event_id),
                    keys.TTL: ttl,
                    "event_id": j.label.event_id,
                    "model_version": j.model.version,
                    "label": j.label.label,
                    "label_index": j.true_index,
                    "predicted_index": j.predicted,
                    "window": j.window,
                    "arrived": keys.iso(j.label.arrived),
                    "message_id": j.message_ids[0],
                },
            )
            for j in joins
        ]

        def build(indices: Sequence[int]) -> list[CounterUpdate]:
            per_window: dict[tuple[str, str], list[_Join]] = defaultdict(list)
            for i in indices:
                per_window[(joins[i].model.version, joins[i].window)].append(joins[i])
            updates = []
            for (version, window), members in sorted(per_window.items()):
                counters = WindowCounters.from_labels(
                    members[0].model.layout,
                    predicted=np.array([j.predicted for j in members], dtype=np.int64),
                    true=np.array([j.true_index for j in members], dtype=np.int64),
                    confidence=np.array([j.confidence for j in members], dtype=np.float64),
                    latency_seconds=np.array([j.latency_seconds for j in members], dtype=np.float64),
                )
                shard = self._rng.randrange(self.shards) if self.shards > 1 else 0
                update = window_update(
                    self.windows_table, version, window, counters, shard, self.shards, self.window_ttl_days
                )
                weighted = WeightedLabels.from_joins((j.route, j.weight, j.predicted == j.true_index) for j in members)
                updates.append(dataclasses.replace(update, add={**update.add, **weighted.to_item_updates()}))
            return updates

        result = self.store.commit_once(markers, build)
        for i, j in enumerate(joins):
            label = j.label
            if i in result.committed:
                outcome = FeedbackOutcome(
                    "labelled",
                    label.event_id,
                    label.label,
                    misclassified=j.predicted != j.true_index,
                    extra={
                        "window": j.window,
                        "model_version": j.model.version,
                        "latency_seconds": round(j.latency_seconds, 3),
                        "route": j.route,
                        "weight": j.weight,
                    },
                )
            elif i in result.duplicates:
                old = result.duplicates[i] or {}
                outcome = FeedbackOutcome("duplicate", label.event_id, label.label, detail="label already counted")
                if old.get("label") is not None and old.get("label") != label.label:
                    outcome.detail = f"event already labelled {old.get('label')!r}; the first label wins"
                    outcome.extra["relabel"] = True
            else:
                outcome = FeedbackOutcome("failed", label.event_id, label.label, error=result.failed.get(i, "unknown"))
            outcomes[j.message_ids[0]] = outcome
            for duplicate in j.message_ids[1:]:
                if outcome.status == "failed":
                    outcomes[duplicate] = FeedbackOutcome("failed", label.event_id, label.label, error=outcome.error)
                else:
                    outcomes[duplicate] = FeedbackOutcome(
                        "duplicate", label.event_id, label.label, detail="duplicate in the same batch"
                    )

    def _count_unmatched(self, outcomes: dict[str, FeedbackOutcome], now: datetime) -> None:
        """Per-day counters of labels we could not use. At-least-once (diagnostic): a crash after this
        write may count a redelivered record again; the exact numbers are the window counters."""
        counts: Counter[str] = Counter()
        for o in outcomes.values():
            if o.status in ("unknown_id", "unknown_label", "not_captured", "invalid"):
                counts[o.status] += 1
            if o.extra.get("relabel"):
                counts["relabel"] += 1
        if not counts:
            return
        update = CounterUpdate(
            table=self.windows_table,
            key={keys.PK: keys.unmatched_pk(self.version), keys.SK: now.strftime("%Y-%m-%d")},
            add=dict(counts),
            set={keys.ATTR_MODEL_VERSION: self.version},
            set_if_absent={keys.TTL: keys.expires_at(now, self.window_ttl_days)},
        )
        try:
            self.store.update(update)
        except Exception:
            # Diagnostic counters must not make a good label batch retry; the log line and the metric remain.
            self.logger.exception("could not write the unmatched-feedback counters", extra=dict(counts))

    # -- telemetry -------------------------------------------------------------------------------
    def _emit_metrics(self, outcomes: dict[str, FeedbackOutcome]) -> None:
        labelled = [o for o in outcomes.values() if o.status == "labelled"]
        unmatched = sum(o.status in UNMATCHED_METRIC_STATUSES for o in outcomes.values())
        versioned = {mc.DIM_SERVICE: mc.SERVICE_FEEDBACK, mc.DIM_MODEL_VERSION: self.version}
        for metric, value, dims in (
            (mc.LABELLED_EVENTS, len(labelled), versioned),
            (mc.MISCLASSIFIED_EVENTS, sum(o.misclassified for o in labelled), versioned),
            (mc.LABELLED_WEIGHT, sum(o.extra["weight"] for o in labelled), versioned),
            (mc.MISCLASSIFIED_WEIGHT, sum(o.extra["weight"] for o in labelled if o.misclassified), versioned),
            (mc.FEEDBACK_UNMATCHED, unmatched, {mc.DIM_SERVICE: mc.SERVICE_FEEDBACK}),
        ):
            with single_metric(
                name=metric.name, unit=MetricUnit.Count, value=value, namespace=mc.NAMESPACE, default_dimensions=dims
            ):
                pass

    def _log_batch(self, records: int, done: list[FeedbackOutcome]) -> None:
        """One line per batch for the labels that went well (counts by status, their event ids): a line per
        label was the feedback path's largest cost (~840 bytes of CloudWatch Logs per label). The label
        itself is in the labels table; waiting, failed and unusable labels keep their own line."""
        counts = Counter(o.status for o in done)
        self.logger.set_correlation_id(None)
        self.logger.info(
            "feedback batch done",
            extra={"records": records, "done": dict(counts), "event_ids": [o.event_id for o in done if o.event_id]},
        )

    def _log(self, message_id: str, outcome: FeedbackOutcome) -> bool:
        """A line for a label that did not simply go well (waiting, failed, unusable: warning level so they are
        never silent); returns False for one that did, which the batch line covers."""
        self.logger.set_correlation_id(outcome.event_id or message_id)
        fields: dict[str, Any] = {"message_id": message_id, "status": outcome.status, **outcome.extra}
        if outcome.label is not None:
            fields["label"] = outcome.label
        if outcome.detail is not None:
            fields["detail"] = outcome.detail
        if outcome.status == "pending":
            self.logger.info("label waits for its prediction; SQS will deliver it again", extra=fields)
        elif outcome.error is not None:
            self.logger.warning("feedback failed; SQS will deliver it again", extra={**fields, "error": outcome.error})
        elif outcome.status in ("unknown_id", "unknown_label", "not_captured", "invalid") or outcome.extra.get(
            "relabel"
        ):
            self.logger.warning("feedback not usable; counted and acknowledged", extra=fields)
        else:
            return False
        return True
