"""The demo's CloudWatch, running in real time: service metrics published, alarms evaluated, pages read back.

One `LocalWatch` lives for a whole demo run, so an alarm's state carries across its parts as in
CloudWatch: the ingest DLQ alarm goes OK -> ALARM when the poison event arrives and stays in ALARM
(one page, not one per part). The drift phase's replay of past drift runs uses a separate evaluator
(`replay_evaluator`): evaluating the past after the present would flip live states back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pigeonhole import alarms as defs
from pigeonhole import constants as c
from pigeonhole_tools.local import alarms as la
from pigeonhole_tools.local.emulator import LocalResources, sqs_client
from pigeonhole_tools.local.metrics import DatumLedger, MetricForwarder, cloudwatch_client
from pigeonhole_tools.local.service_metrics import ServiceMetrics

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

UNKNOWN_MODEL_VERSION = "unknown"


def model_version(model_dir: Path | None) -> str:
    """The manifest's version (the ModelVersion dimension); "unknown" when there is no model (test handlers)."""
    if model_dir is None:
        return UNKNOWN_MODEL_VERSION
    try:
        from pigeonhole.model.manifest import load_manifest

        return load_manifest(model_dir).version
    except Exception:  # a stub handler runs without a model package
        return UNKNOWN_MODEL_VERSION


@dataclass
class Evaluation:
    """One evaluation of every alarm: what the demo prints as a column."""

    label: str
    at: str
    results: list[la.AlarmResult]


@dataclass
class LocalWatch:
    """Forwarder (+ ledger for percentiles), service metrics, the live evaluator and the alarm topics."""

    sqs: SQSClient
    forwarder: MetricForwarder
    service: ServiceMetrics
    topics: la.AlarmTopics
    evaluator: la.LocalAlarms
    evaluations: list[Evaluation] = field(default_factory=list)
    pages: list[dict[str, Any]] = field(default_factory=list)
    tickets: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, resources: LocalResources, model_dir: Path | None) -> LocalWatch:
        """Topics and subscriber queues first (before anything can alarm), then the evaluator."""
        sqs = sqs_client(resources.endpoint, resources.region)
        sns = la.sns_client(resources.endpoint, resources.region)
        topics = la.provision_alarm_topics(sns, sqs, resources.names)
        cloudwatch = cloudwatch_client(resources.endpoint, resources.region)
        forwarder = MetricForwarder(cloudwatch, DatumLedger())
        service = ServiceMetrics.for_resources(resources, sqs_client(resources.endpoint, resources.region), forwarder)
        bindings = la.local_bindings(resources.names, model_version(model_dir))
        alarms = defs.applicable(provisioned_concurrency=True)
        window = int(os.environ.get(c.ENV_WINDOW_SECONDS, c.DEFAULT_WINDOW_SECONDS))
        evaluator = la.LocalAlarms(
            la.CloudWatchSource(cloudwatch, forwarder.ledger),
            bindings,
            prefix=resources.names.prefix,
            window_seconds=window,
            notifier=la.SnsNotifier(sns, topics),
            alarms=alarms,
            not_evaluated=service.not_evaluated(alarms, bindings),
        )
        return cls(sqs, forwarder, service, topics, evaluator)

    def replay_evaluator(self) -> la.LocalAlarms:
        """An evaluator for past instants (same source, alarms, reasons and notifier; its own states)."""
        live = self.evaluator
        return la.LocalAlarms(
            live.source,
            live.bindings,
            prefix=live.prefix,
            window_seconds=live.window_seconds,
            notifier=live.notifier,
            alarms=live.alarms,
            composites=live.composites,
            not_evaluated=live.not_evaluated,
        )

    def evaluate(self, label: str, at: datetime | None = None) -> Evaluation:
        """Publish the service metrics, evaluate every alarm now, read back what was notified."""
        when = at or datetime.now(UTC)
        self.service.publish(when)
        evaluation = Evaluation(label, _iso(when), self.evaluator.evaluate(when))
        self.evaluations.append(evaluation)
        self.read_notifications()
        return evaluation

    def read_notifications(self) -> None:
        self.pages.extend(la.read_notifications(self.sqs, self.topics.oncall_queue_url))
        self.tickets.extend(la.read_notifications(self.sqs, self.topics.ticket_queue_url))


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
