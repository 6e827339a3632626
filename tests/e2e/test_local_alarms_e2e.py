"""Local alarms on a moto server: metrics put -> read back and evaluated -> SNS -> subscriber queue."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from pigeonhole import metrics_catalog as mc
from pigeonhole.drift.service import MetricPoint
from pigeonhole.naming import ResourceNames
from pigeonhole_tools.local import alarms as la
from pigeonhole_tools.local.emulator import DEFAULT_REGION, Emulator, sqs_client
from pigeonhole_tools.local.metrics import MetricForwarder, cloudwatch_client, read_emf_lines


def _emf(epoch: int, version: str, received: float, quarantined: float) -> str:
    return json.dumps(
        {
            "_aws": {
                "Timestamp": epoch * 1000,
                "CloudWatchMetrics": [
                    {
                        "Namespace": mc.NAMESPACE,
                        "Dimensions": [[mc.DIM_SERVICE, mc.DIM_MODEL_VERSION]],
                        "Metrics": [
                            {"Name": mc.EVENTS_RECEIVED.name, "Unit": "Count"},
                            {"Name": mc.EVENTS_QUARANTINED.name, "Unit": "Count"},
                        ],
                    }
                ],
            },
            mc.DIM_SERVICE: mc.SERVICE_CLASSIFIER,
            mc.DIM_MODEL_VERSION: version,
            mc.EVENTS_RECEIVED.name: [received / 2, received / 2],  # EMF arrays: two batches
            mc.EVENTS_QUARANTINED.name: quarantined,
        }
    )


def test_metrics_put_evaluated_and_notified_through_sns(emulator: Emulator) -> None:
    endpoint = emulator.endpoint
    names = ResourceNames(f"e2e-alarms-{uuid.uuid4().hex[:8]}")
    version = f"v-{uuid.uuid4().hex[:8]}"  # moto's metrics are process-wide: a unique dimension isolates them
    sqs = sqs_client(endpoint, DEFAULT_REGION, max_attempts=1)
    sns = la.sns_client(endpoint, DEFAULT_REGION, max_attempts=1)
    cloudwatch = cloudwatch_client(endpoint, DEFAULT_REGION, max_attempts=1)
    topics = la.provision_alarm_topics(sns, sqs, names)
    forwarder = MetricForwarder(cloudwatch)
    evaluator = la.LocalAlarms(
        la.CloudWatchSource(cloudwatch),
        la.local_bindings(names, version),
        prefix=names.prefix,
        window_seconds=300,
        notifier=la.SnsNotifier(sns, topics),
    )

    base = int(datetime.now(UTC).timestamp()) // 3600 * 3600 - 3600  # a past, hour-aligned instant
    dims = {mc.DIM_SERVICE: mc.SERVICE_DRIFT, mc.DIM_MODEL_VERSION: version}
    # Window 1 ok, window 2 page: the drift function's points, stamped with each run's time.
    forwarder.put_points([MetricPoint("DriftSeverity", "None", 0.0, dims)], datetime.fromtimestamp(base + 420, UTC))
    first = {r.suffix: r for r in evaluator.evaluate(datetime.fromtimestamp(base + 420, UTC))}
    assert first["drift-page"].state == la.State.OK
    forwarder.put_points([MetricPoint("DriftSeverity", "None", 2.0, dims)], datetime.fromtimestamp(base + 720, UTC))
    # The classifier's EMF: 3 of 5 minutes with 10 % quarantined (ticket), 20+ events each.
    lines = [_emf(base + 600 + 60 * k + 5, version, 40.0, 4.0 if k % 2 == 0 else 0.0) for k in range(5)]
    assert forwarder.put(read_emf_lines(lines)) == 10  # two metrics x five documents
    second = {r.suffix: r for r in evaluator.evaluate(datetime.fromtimestamp(base + 899, UTC))}
    assert second["drift-page"].state == la.State.ALARM, second["drift-page"].reason
    assert second["quarantine-rate"].values == [10.0, 0.0, 10.0, 0.0, 10.0]
    assert second["quarantine-rate"].state == la.State.ALARM
    assert second["ingest-dlq-depth"].state == la.State.NOT_EVALUATED

    pages = la.read_notifications(sqs, topics.oncall_queue_url)
    tickets = la.read_notifications(sqs, topics.ticket_queue_url)
    assert [p["AlarmName"] for p in pages] == [f"{names.prefix}-drift-page"]
    assert pages[0]["OldStateValue"] == "OK"
    assert pages[0]["NewStateValue"] == "ALARM"
    # The canary's quarantine rate reads the same ModelVersion-bound points (2 of its last 3 minutes at 10 %).
    assert sorted(t["AlarmName"] for t in tickets) == [
        f"{names.prefix}-canary-quarantine-rate",
        f"{names.prefix}-drift-warn",
        f"{names.prefix}-quarantine-rate",
    ]
    assert la.notification_line(pages[0]).startswith(f"PAGE: {names.prefix}-drift-page OK -> ALARM")
    # Still in ALARM at the next evaluation: nothing new is published.
    evaluator.evaluate(datetime.fromtimestamp(base + 899, UTC))
    assert la.read_notifications(sqs, topics.oncall_queue_url) == []
