"""The classifier service: one SQS batch in, every record labelled, routed and accounted for.

Order of work for a batch: validate every record (invalid ones are quarantined with a reason), run
the model once over all valid records, route by confidence, publish in batches, then let an optional
observer (window counters, prediction capture) see the batch.

The one rule (docs/reliability.md): anything caused by a record's *content*, at any step, becomes that
record's quarantine reason (``unprocessable`` with the step's name when no sharper code applies);
only the *environment* (AWS errors, throttling, time running out) fails a record, and then only the
records it touched: SQS delivers those again and, after maxReceiveCount, dead-letters them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import numpy as np
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from pigeonhole import metrics_catalog as mc
from pigeonhole.adapters.eventbridge import EventBusPublisher
from pigeonhole.adapters.s3 import BodyArchive
from pigeonhole.adapters.sqs import QueueSender
from pigeonhole.classify.contract import InputEvent, Reason, arrival, check_time, event_model, parse_body
from pigeonhole.classify.routing import Classification, RouteReason, route_one
from pigeonhole.classify.scoring import batch_unknown_scores, per_event
from pigeonhole.config import Settings
from pigeonhole.constants import QUARANTINE_SCHEMA
from pigeonhole.entry.batch import partial_batch_response
from pigeonhole.exceptions import ModelIntegrityError, PublishError
from pigeonhole.model.runtime import ModelRuntime
from pigeonhole.wire import DEFAULT_EMBED_BYTES, SQS_MAX_MESSAGE_BYTES, digest, fit, strict_dumps, utf8_len

Status = Literal["auto", "review", "quarantined", "failed"]


@dataclass
class Outcome:
    """What became of one SQS record; `error` set means SQS must deliver it again."""

    status: Status
    event_id: str | None = None
    classification: Classification | None = None
    reason: Reason | None = None
    error: str | None = None


# Time kept back from the invocation's remaining time: enough to log and return the item failures
# before Lambda stops the function. Retry loops and phases that would run past it fail their records.
RESERVE_SECONDS = 2.0
# Longest plausible-time window accepted (timedelta's range ends near 2.7 million years).
_MAX_SPAN_SECONDS = 100 * 365 * 86_400
_ENVIRONMENT_ERRORS = (ClientError, BotoCoreError, MemoryError, ModelIntegrityError)
# One count metric per route reason; every batch emits all three (zeros included) so alarms see data.
_REASON_METRICS: dict[RouteReason, mc.MetricDef] = {
    "confident": mc.EVENTS_CONFIDENT,
    "low_confidence": mc.EVENTS_LOW_CONFIDENCE,
    "unknown": mc.EVENTS_UNKNOWN,
}


def unprocessable(step: str, exc: BaseException, event_id: str | None = None) -> Reason:
    """The catch-all reason: the step and the exception's type, never its message (it may quote the text)."""
    return Reason("unprocessable", f"{step} failed ({type(exc).__name__})", None, event_id)


class BatchObserver(Protocol):
    """Sees each routed batch (e.g. window counters, prediction capture); returns {message_id: error}.

    An error means the environment kept a record from being counted (SQS delivers it again); a record
    whose content cannot be counted is the observer's to skip and log, never an error.
    """

    def observe(
        self,
        classified: Sequence[tuple[str, Classification]],
        quarantined: Sequence[tuple[str, Reason]],
        runtime: ModelRuntime,
        deadline: float | None = None,
        arrivals: Mapping[str, float] | None = None,
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
        archive: BodyArchive | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.bus = bus
        self.review = review
        self.quarantine = quarantine
        self.logger = logger
        self.metrics = metrics
        self.observer = observer
        self.archive = archive
        self.clock = clock
        self.monotonic = monotonic
        manifest = runtime.manifest
        # An operator's PIGEONHOLE_REVIEW_THRESHOLD is one threshold for every class: it replaces the
        # manifest's review_confidence and its per-class thresholds. The unknown route stays on.
        if settings.review_threshold is not None:
            self.threshold = settings.review_threshold
            self.per_class: dict[str, float] = {}
        else:
            self.threshold = manifest.thresholds.review_confidence
            self.per_class = dict(manifest.thresholds.per_class)
        self.unknown_threshold = manifest.unknown.threshold if manifest.unknown is not None else None
        self.top_k = settings.top_k if settings.top_k is not None else manifest.thresholds.top_k
        self.max_age = timedelta(seconds=min(settings.event_max_age_seconds, _MAX_SPAN_SECONDS))
        self.max_lead = timedelta(seconds=min(settings.event_max_lead_seconds, _MAX_SPAN_SECONDS))
        self._event_model = event_model(manifest.input)
        self._model_ref = {"name": manifest.name, "version": manifest.version, "sha256": manifest.model.sha256}

    # -- the Lambda entry point ------------------------------------------------------------------
    def handle(self, event: dict[str, Any], context: LambdaContext | None) -> PartialItemFailureResponse:
        if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
            raise ValueError(
                "the classifier accepts SQS event source mapping events only (a 'Records' list); "
                "send events to the ingest queue or the input bus instead of invoking it directly"
            )
        outcomes = self.classify_batch(event["Records"], deadline=self.deadline(context))

        def finish(record: SQSRecord) -> str:
            outcome = outcomes[record.message_id]
            if outcome.error is not None or outcome.status == "quarantined":
                self._log_outcome(record.message_id, outcome)
            if outcome.error is not None:
                raise PublishError(outcome.error)
            return outcome.status

        response = partial_batch_response(event, finish, context)
        self._log_batch(outcomes)
        return response

    def deadline(self, context: LambdaContext | None) -> float | None:
        """The monotonic time by which the work must be done (None: no context, no limit)."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if remaining is None:
            return None
        try:
            millis = float(remaining())
        except (TypeError, ValueError):
            return None
        return self.monotonic() + millis / 1000.0 - RESERVE_SECONDS

    def _out_of_time(self, deadline: float | None) -> bool:
        return deadline is not None and self.monotonic() >= deadline

    # -- the work -------------------------------------------------------------------------------
    def classify_batch(self, records: Sequence[dict[str, Any]], deadline: float | None = None) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        valid: list[tuple[str, InputEvent]] = []
        bodies: dict[str, dict[str, Any]] = {}
        for record in records:
            message_id = record["messageId"]
            bodies[message_id] = record
            parsed = self._validate(record)
            if isinstance(parsed, Reason):
                outcomes[message_id] = Outcome("quarantined", event_id=parsed.event_id, reason=parsed)
            else:
                valid.append((message_id, parsed))

        classified = self._classify(valid, outcomes)
        classified = self._publish(classified, outcomes, bodies, deadline)
        if self.observer is not None:
            self._observe(classified, outcomes, bodies, deadline)
        self._emit_metrics(len(records), outcomes)
        return outcomes

    def _validate(self, record: dict[str, Any]) -> InputEvent | Reason:
        """The contract, then the plausible-time window; any other failure is the record's own."""
        try:
            body = record.get("body")
            parsed = parse_body(
                body if isinstance(body, str) else "",
                self.runtime.manifest.input,
                self._event_model,
                self.settings.max_event_bytes,
            )
            if isinstance(parsed, InputEvent):
                return check_time(parsed, self._arrival(record), self.max_age, self.max_lead) or parsed
            return parsed
        except Exception as exc:  # content: whatever the parser did not foresee fails this record only
            return unprocessable("validation", exc)

    def _arrival(self, record: dict[str, Any]) -> datetime:
        return arrival(record, self.clock)

    def _classify(
        self, valid: list[tuple[str, InputEvent]], outcomes: dict[str, Outcome]
    ) -> list[tuple[str, Classification]]:
        if not valid:
            return []
        texts = [event.model_input for _, event in valid]
        started = time.perf_counter()
        rows: list[np.ndarray] = []
        distances: list[float | None] = []
        usable: list[tuple[str, InputEvent]] = []
        try:
            prediction = self.runtime.predict(texts)
            rows = list(prediction.probabilities)
            distances = per_event(prediction.hidden_distance, len(rows))
            usable = valid
        except Exception as batch_exc:
            # One poison input must not sink its neighbours: run one by one to isolate it.
            self.logger.warning(
                "batch inference failed; isolating records one by one", extra={"error_type": type(batch_exc).__name__}
            )
            for message_id, event in valid:
                try:
                    alone = self.runtime.predict([event.model_input])
                    rows.append(alone.probabilities[0])
                    distances.append(per_event(alone.hidden_distance, 1)[0])
                    usable.append((message_id, event))
                except _ENVIRONMENT_ERRORS as exc:  # the model or the machine, not the record: retry
                    outcomes[message_id] = Outcome(
                        "failed", event_id=event.id, error=f"inference failed: {type(exc).__name__}"
                    )
                except Exception as exc:
                    outcomes[message_id] = self._quarantined(unprocessable("inference", exc, event.id))
        self.metrics.add_metric(
            name=mc.INFERENCE_TIME.name,
            unit=MetricUnit.Milliseconds,
            value=(time.perf_counter() - started) * 1000.0,
        )
        scores = None
        if self.unknown_threshold is not None:
            texts_used = [event.model_input for _, event in usable]
            scores = batch_unknown_scores(self.runtime, texts_used, rows, distances, self.logger)
        result = []
        for i, ((message_id, event), row) in enumerate(zip(usable, rows, strict=True)):
            try:
                score = (
                    scores[i]
                    if scores is not None
                    else self.runtime.unknown_score(event.model_input, row, distances[i])
                )
                classification = route_one(
                    event,
                    row,
                    self.runtime.classes,
                    threshold=self.threshold,
                    top_k=self.top_k,
                    window_seconds=self.settings.window_seconds,
                    per_class=self.per_class,
                    unknown_score=score,
                    unknown_threshold=self.unknown_threshold,
                )
            except Exception as exc:
                outcomes[message_id] = self._quarantined(unprocessable("routing", exc, event.id))
                continue
            outcomes[message_id] = Outcome(classification.route, event_id=event.id, classification=classification)
            result.append((message_id, classification))
        return result

    @staticmethod
    def _quarantined(reason: Reason) -> Outcome:
        return Outcome("quarantined", event_id=reason.event_id, reason=reason)

    def _publish(
        self,
        classified: list[tuple[str, Classification]],
        outcomes: dict[str, Outcome],
        records: dict[str, dict[str, Any]],
        deadline: float | None,
    ) -> list[tuple[str, Classification]]:
        """Write every message; return the classifications still standing (some may turn out unwritable)."""
        manifest = self.runtime.manifest
        auto: list[tuple[str, dict[str, Any] | str]] = []
        review: list[tuple[str, str]] = []
        standing: list[tuple[str, Classification]] = []
        for mid, c in classified:
            try:
                output = c.to_output(manifest)
                if c.route == "auto":
                    auto.append((mid, strict_dumps(output)))
                else:
                    review.append((mid, self._review_body(output, c.event.payload)))
            except Exception as exc:  # e.g. NaN in a producer's field: strict JSON cannot carry it
                outcomes[mid] = self._quarantined(unprocessable("output", exc, c.event.id))
                continue
            standing.append((mid, c))
        quarantine: list[tuple[str, str]] = []
        for mid, outcome in outcomes.items():
            if outcome.status != "quarantined" or outcome.reason is None:
                continue
            body, error = self._quarantine_body(mid, outcome.reason, records[mid], deadline)
            if error is not None:
                outcome.error = error
            else:
                quarantine.append((mid, body))
        if self._out_of_time(deadline):
            keys = [k for k, _ in auto] + [k for k, _ in review] + [k for k, _ in quarantine]
            failures = dict.fromkeys(keys, "out of time before publishing")
        else:
            failures = {**self.bus.publish(auto), **self.review.send(review), **self.quarantine.send(quarantine)}
        for message_id, error in failures.items():
            outcomes[message_id].error = error
        return standing

    def _review_body(self, output: dict[str, Any], payload: dict[str, Any]) -> str:
        """The result plus the producer's event, capped so the message always fits the review queue."""
        full = strict_dumps({**output, "input": payload})
        if utf8_len(full) <= SQS_MAX_MESSAGE_BYTES:
            return full
        # Too large once re-escaped: embed a prefix of the event's JSON text plus its digest and size.
        text = strict_dumps(payload)
        sha, size = digest(text)
        extra = {"input": None, "input_sha256": sha, "input_bytes": size}
        message, _ = fit(
            lambda part, cut: strict_dumps({**output, **extra, "input_text": part, "input_truncated": cut}),
            text,
            SQS_MAX_MESSAGE_BYTES,
        )
        return message

    def _quarantine_body(
        self, message_id: str, reason: Reason, record: dict[str, Any], deadline: float | None
    ) -> tuple[str, str | None]:
        """Everything needed to fix and replay the event: the reason and the body (capped to fit the queue,
        with its sha256 and size; the whole body in the archive bucket when one is configured)."""
        attributes = record.get("attributes") or {}
        raw = record.get("body")
        body = raw if isinstance(raw, str) else ""
        sha, size = digest(body)
        head = {
            "schema": QUARANTINE_SCHEMA,
            "reason": reason.to_dict(),
            "message_id": message_id,
            "event_id": reason.event_id,
            "source_arn": _text(record.get("eventSourceARN")),
            "receive_count": _text(attributes.get("ApproximateReceiveCount") if isinstance(attributes, dict) else None),
            "sent_timestamp": _text(attributes.get("SentTimestamp") if isinstance(attributes, dict) else None),
            "model": self._model_ref,
            "body_sha256": sha,
            "body_bytes": size,
        }

        def build(part: str, cut: bool) -> str:
            return strict_dumps({**head, "body": part, "body_truncated": cut})

        start = max(DEFAULT_EMBED_BYTES, SQS_MAX_MESSAGE_BYTES // 2)
        try:
            text, cut = fit(build, body, SQS_MAX_MESSAGE_BYTES, start=start)
        except Exception as exc:  # never leave a record without its quarantine message
            head = {k: head[k] for k in ("schema", "message_id", "body_sha256", "body_bytes")}
            head["reason"] = unprocessable("quarantine message", exc).to_dict()
            return strict_dumps({**head, "body": None, "body_truncated": True}), None
        if cut and self.archive is not None:
            if self._out_of_time(deadline):
                return text, "out of time before archiving the body"
            error = self.archive.put(sha, body.encode("utf-8", errors="surrogatepass"))
            if error is not None:
                return text, error
            head["body_archive"] = {"bucket": self.archive.bucket, "key": BodyArchive.key_for(sha)}
            text, _ = fit(build, body, SQS_MAX_MESSAGE_BYTES, start=start)
        return text, None

    def _observe(
        self,
        classified: list[tuple[str, Classification]],
        outcomes: dict[str, Outcome],
        records: dict[str, dict[str, Any]],
        deadline: float | None,
    ) -> None:
        assert self.observer is not None
        ok = [(mid, c) for mid, c in classified if outcomes[mid].error is None]
        quarantined = [
            (mid, o.reason)
            for mid, o in outcomes.items()
            if o.status == "quarantined" and o.error is None and o.reason is not None
        ]
        if not ok and not quarantined:
            return
        # A quarantined record has no trustworthy time of its own: it is counted in the window of its arrival,
        # SQS's SentTimestamp, which every redelivery keeps (the clock would move a redelivery to another window).
        arrivals = {mid: self._arrival(records[mid]).timestamp() for mid, _ in quarantined}
        try:
            failures = self.observer.observe(ok, quarantined, self.runtime, deadline=deadline, arrivals=arrivals)
        except (ClientError, BotoCoreError) as exc:
            # The environment broke the window step: the records it touched are delivered again.
            self.logger.warning(
                "observer failed; these records will be delivered again", extra={"error_type": type(exc).__name__}
            )
            ids = [mid for mid, _ in ok] + [mid for mid, _ in quarantined]
            failures = {mid: f"observer failed: {type(exc).__name__}" for mid in ids}
        except Exception as exc:
            # Not the environment: retrying cannot help and would republish the outputs. Counting of this
            # batch is lost (logged, with the error type only); the outputs stand.
            self.logger.error("observer failed; the batch is not counted", extra={"error_type": type(exc).__name__})
            failures = {}
        for message_id, error in failures.items():
            if message_id in outcomes:
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
        reasons: Counter[str] = Counter(
            o.classification.route_reason for o in outcomes.values() if o.classification is not None
        )
        for reason, reason_metric in _REASON_METRICS.items():
            add(name=reason_metric.name, unit=MetricUnit.Count, value=reasons[reason])
        if classified and self.unknown_threshold is not None:
            add(name=mc.UNKNOWN_RATE.name, unit=MetricUnit.Percent, value=100.0 * reasons["unknown"] / classified)
        labels: Counter[str] = Counter()
        for outcome in outcomes.values():
            if outcome.classification is not None:
                add(name=mc.CONFIDENCE.name, unit=MetricUnit.NoUnit, value=outcome.classification.confidence)
                labels[outcome.classification.label] += 1
        if not self.settings.per_label_metrics:
            return  # the class mix is in the window counters, the drift report and its per-window metrics
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

    def _log_batch(self, outcomes: dict[str, Outcome]) -> None:
        """One line per batch for the records that went well (counts by status, ids of the events classified):
        their label, confidence and route are in the output or review message, and a line per success cost
        ~600 bytes of CloudWatch Logs per event. Quarantined and failed records keep their own line."""
        counts = Counter("failed" if o.error is not None else o.status for o in outcomes.values())
        ok = [o.event_id or m for m, o in outcomes.items() if o.error is None and o.status in ("auto", "review")]
        fields = {s: counts[s] for s in ("auto", "review", "quarantined", "failed")}
        self.logger.set_correlation_id(None)
        self.logger.info("batch done", extra={"records": len(outcomes), **fields, "event_ids": ok})

    def _log_outcome(self, message_id: str, outcome: Outcome) -> None:
        """One line per quarantined or failed record, keyed by the event id; never the event's text."""
        self.logger.set_correlation_id(outcome.event_id or message_id)
        fields: dict[str, Any] = {"message_id": message_id, "status": outcome.status}
        if outcome.classification is not None:
            c = outcome.classification
            fields.update(
                label=c.label,
                confidence=c.confidence,
                route=c.route,
                route_reason=c.route_reason,
                unknown_score=c.unknown_score,
                window=c.window,
            )
        if outcome.reason is not None:
            fields.update(reason=outcome.reason.to_dict())
        if outcome.error is not None:
            self.logger.warning("record failed; SQS will deliver it again", extra={**fields, "error": outcome.error})
        else:
            self.logger.info("record done", extra=fields)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
