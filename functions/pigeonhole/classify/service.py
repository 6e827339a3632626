"""The classifier service: one SQS batch in, every record labelled, routed and accounted for.

Order of work for a batch: validate every record (invalid ones are quarantined with a reason), run
the model once over all valid records, route by confidence, publish in batches, then let an optional
observer (window counters, prediction capture) see the batch. A record whose downstream write fails
is reported as a batch item failure, so SQS delivers it again; after maxReceiveCount it reaches the
DLQ. Nothing here crashes the batch because of one record.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pigeonhole import metrics_catalog as mc
from pigeonhole.adapters.eventbridge import EventBusPublisher
from pigeonhole.adapters.sqs import QueueSender
from pigeonhole.classify.contract import InputEvent, Reason, event_model, parse_body
from pigeonhole.classify.routing import Classification, route_batch
from pigeonhole.config import Settings
from pigeonhole.constants import QUARANTINE_SCHEMA
from pigeonhole.entry.batch import partial_batch_response
from pigeonhole.exceptions import PublishError
from pigeonhole.model.runtime import ModelRuntime

Status = Literal["auto", "review", "quarantined", "failed"]


@dataclass
class Outcome:
    """What became of one SQS record; `error` set means SQS must deliver it again."""

    status: Status
    event_id: str | None = None
    classification: Classification | None = None
    reason: Reason | None = None
    error: str | None = None


class BatchObserver(Protocol):
    """Sees each routed batch (e.g. window counters, prediction capture); returns {message_id: error}."""

    def observe(
        self,
        classified: Sequence[tuple[str, Classification]],
        quarantined: Sequence[tuple[str, Reason]],
        runtime: ModelRuntime,
    ) -> dict[str, str]: ...


class ClassifierService:
    def __init__(
        self,
        settings: Settings,
        runtime: ModelRuntime,
        bus: EventBusPublisher,
        review: QueueSender,
        quarantine: QueueSender,
        logger: Logger,
        metrics: Metrics,
        observer: BatchObserver | None = None,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.bus = bus
        self.review = review
        self.quarantine = quarantine
        self.logger = logger
        self.metrics = metrics
        self.observer = observer
        manifest = runtime.manifest
        self.threshold = (
            settings.review_threshold
            if settings.review_threshold is not None
            else manifest.thresholds.review_confidence
        )
        self.top_k = settings.top_k if settings.top_k is not None else manifest.thresholds.top_k
        self._event_model = event_model(manifest.input)
        self._model_ref = {"name": manifest.name, "version": manifest.version, "sha256": manifest.model.sha256}

    # -- the Lambda entry point ------------------------------------------------------------------
    def handle(self, event: dict[str, Any], context: LambdaContext | None) -> PartialItemFailureResponse:
        if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
            raise ValueError(
                "the classifier accepts SQS event source mapping events only (a 'Records' list); "
                "send events to the ingest queue or the input bus instead of invoking it directly"
            )
        outcomes = self.classify_batch(event["Records"])

        def finish(record: SQSRecord) -> str:
            outcome = outcomes[record.message_id]
            self._log_outcome(record.message_id, outcome)
            if outcome.error is not None:
                raise PublishError(outcome.error)
            return outcome.status

        return partial_batch_response(event, finish, context)

    # -- the work -------------------------------------------------------------------------------
    def classify_batch(self, records: Sequence[dict[str, Any]]) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        valid: list[tuple[str, InputEvent]] = []
        bodies: dict[str, dict[str, Any]] = {}
        for record in records:
            message_id = record["messageId"]
            bodies[message_id] = record
            parsed = parse_body(
                record.get("body") or "", self.runtime.manifest.input, self._event_model, self.settings.max_event_bytes
            )
            if isinstance(parsed, Reason):
                outcomes[message_id] = Outcome("quarantined", event_id=parsed.event_id, reason=parsed)
            else:
                valid.append((message_id, parsed))

        classified = self._classify(valid, outcomes)
        self._publish(classified, outcomes, bodies)
        if self.observer is not None:
            self._observe(classified, outcomes)
        self._emit_metrics(len(records), outcomes)
        return outcomes

    def _classify(
        self, valid: list[tuple[str, InputEvent]], outcomes: dict[str, Outcome]
    ) -> list[tuple[str, Classification]]:
        if not valid:
            return []
        texts = [event.model_input for _, event in valid]
        started = time.perf_counter()
        try:
            probabilities = self.runtime.predict_proba(texts)
            usable = valid
        except Exception:
            # One poison input must not sink its neighbours: retry one by one to isolate it.
            self.logger.exception("batch inference failed; isolating records one by one")
            rows: list[np.ndarray] = []
            usable = []
            for message_id, event in valid:
                try:
                    rows.append(self.runtime.predict_proba([event.model_input])[0])
                    usable.append((message_id, event))
                except Exception as exc:
                    outcomes[message_id] = Outcome("failed", event_id=event.id, error=f"inference failed: {exc}")
            probabilities = np.vstack(rows) if rows else np.zeros((0, len(self.runtime.classes)), dtype=np.float32)
        self.metrics.add_metric(
            name=mc.INFERENCE_TIME.name,
            unit=MetricUnit.Milliseconds,
            value=(time.perf_counter() - started) * 1000.0,
        )
        routed = route_batch(
            [event for _, event in usable],
            probabilities,
            self.runtime.classes,
            threshold=self.threshold,
            top_k=self.top_k,
            window_seconds=self.settings.window_seconds,
        )
        result = []
        for (message_id, event), classification in zip(usable, routed, strict=True):
            outcomes[message_id] = Outcome(classification.route, event_id=event.id, classification=classification)
            result.append((message_id, classification))
        return result

    def _publish(
        self,
        classified: list[tuple[str, Classification]],
        outcomes: dict[str, Outcome],
        records: dict[str, dict[str, Any]],
    ) -> None:
        manifest = self.runtime.manifest
        auto = [(mid, c.to_output(manifest)) for mid, c in classified if c.route == "auto"]
        review = [
            (mid, json.dumps({**c.to_output(manifest), "input": c.event.payload}, separators=(",", ":")))
            for mid, c in classified
            if c.route == "review"
        ]
        quarantine = [
            (mid, self._quarantine_body(mid, outcome.reason, records[mid]))
            for mid, outcome in outcomes.items()
            if outcome.status == "quarantined" and outcome.reason is not None
        ]
        failures = {**self.bus.publish(auto), **self.review.send(review), **self.quarantine.send(quarantine)}
        for message_id, error in failures.items():
            outcomes[message_id].error = error

    def _quarantine_body(self, message_id: str, reason: Reason, record: dict[str, Any]) -> str:
        """Everything needed to fix and replay the event: the reason and the untouched body."""
        attributes = record.get("attributes") or {}
        return json.dumps(
            {
                "schema": QUARANTINE_SCHEMA,
                "reason": reason.to_dict(),
                "message_id": message_id,
                "event_id": reason.event_id,
                "source_arn": record.get("eventSourceARN"),
                "receive_count": attributes.get("ApproximateReceiveCount"),
                "sent_timestamp": attributes.get("SentTimestamp"),
                "model": self._model_ref,
                "body": record.get("body"),
            },
            separators=(",", ":"),
        )

    def _observe(self, classified: list[tuple[str, Classification]], outcomes: dict[str, Outcome]) -> None:
        assert self.observer is not None
        ok = [(mid, c) for mid, c in classified if outcomes[mid].error is None]
        quarantined = [
            (mid, o.reason)
            for mid, o in outcomes.items()
            if o.status == "quarantined" and o.error is None and o.reason is not None
        ]
        try:
            failures = self.observer.observe(ok, quarantined, self.runtime)
        except Exception as exc:
            self.logger.exception("observer failed; the batch will be delivered again")
            ids = [mid for mid, _ in ok] + [mid for mid, _ in quarantined]
            failures = {mid: f"observer failed: {exc}" for mid in ids}
        for message_id, error in failures.items():
            outcomes[message_id].error = error

    # -- telemetry ------------------------------------------------------------------------------
    def _emit_metrics(self, received: int, outcomes: dict[str, Outcome]) -> None:
        counts = Counter(o.status for o in outcomes.values())
        classified = counts["auto"] + counts["review"]
        add = self.metrics.add_metric
        add(name=mc.EVENTS_RECEIVED.name, unit=MetricUnit.Count, value=received)
        add(name=mc.EVENTS_CLASSIFIED.name, unit=MetricUnit.Count, value=classified)
        add(name=mc.EVENTS_AUTO.name, unit=MetricUnit.Count, value=counts["auto"])
        add(name=mc.EVENTS_REVIEW.name, unit=MetricUnit.Count, value=counts["review"])
        add(name=mc.EVENTS_QUARANTINED.name, unit=MetricUnit.Count, value=counts["quarantined"])
        add(
            name=mc.PUBLISH_FAILURES.name,
            unit=MetricUnit.Count,
            value=sum(o.error is not None for o in outcomes.values()),
        )
        if received:
            add(name=mc.QUARANTINE_RATE.name, unit=MetricUnit.Percent, value=100.0 * counts["quarantined"] / received)
        if classified:
            add(name=mc.LOW_CONFIDENCE_RATE.name, unit=MetricUnit.Percent, value=100.0 * counts["review"] / classified)
        labels: Counter[str] = Counter()
        for outcome in outcomes.values():
            if outcome.classification is not None:
                add(name=mc.CONFIDENCE.name, unit=MetricUnit.NoUnit, value=outcome.classification.confidence)
                labels[outcome.classification.label] += 1
        dimensions = {mc.DIM_SERVICE: self.metrics.service or mc.SERVICE_CLASSIFIER, **self.metrics.default_dimensions}
        for label, count in sorted(labels.items()):
            with single_metric(
                name=mc.CLASS_PREDICTED.name,
                unit=MetricUnit.Count,
                value=count,
                namespace=self.metrics.namespace,
                default_dimensions=dimensions,
            ) as metric:
                metric.add_dimension(name=mc.DIM_LABEL, value=label)

    def _log_outcome(self, message_id: str, outcome: Outcome) -> None:
        """One line per record, keyed by the event id; never the event's text."""
        self.logger.set_correlation_id(outcome.event_id or message_id)
        fields: dict[str, Any] = {"message_id": message_id, "status": outcome.status}
        if outcome.classification is not None:
            c = outcome.classification
            fields.update(label=c.label, confidence=c.confidence, route=c.route, window=c.window)
        if outcome.reason is not None:
            fields.update(reason=outcome.reason.to_dict())
        if outcome.error is not None:
            self.logger.warning("record failed; SQS will deliver it again", extra={**fields, "error": outcome.error})
        else:
            self.logger.info("record done", extra=fields)
