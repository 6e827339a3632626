"""One simulated stream: events drawn per window, classified, labelled, judged by the real drift run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from aws_lambda_powertools import Logger

from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.classify.contract import InputEvent
from pigeonhole.classify.routing import route_batch
from pigeonhole.drift import layout as keys
from pigeonhole.drift.compaction import read_window
from pigeonhole.drift.counters import WindowCounters
from pigeonhole.drift.recorder import WindowRecorder
from pigeonhole.drift.service import DriftConfig, MetricPoint, run_drift
from pigeonhole.feedback.service import FeedbackService
from pigeonhole.model.manifest import Manifest
from pigeonhole.naming import MAX_BATCH_SIZE
from pigeonhole_tools.monitoring.harness.config import T0, HarnessConfig, ModelKey
from pigeonhole_tools.monitoring.harness.models import LoadedModel
from pigeonhole_tools.monitoring.harness.pools import Pool
from pigeonhole_tools.monitoring.harness.scenarios import Component, Scenario
from pigeonhole_tools.monitoring.sandbox import Sandbox


@dataclass
class WindowObservation:
    """One closed window as the drift run judged it, with its counters for the offline sweep."""

    index: int
    start: str
    shifted: bool
    severity: str
    baseline_severity: str
    reference_severity: str | None
    signals: dict[str, tuple[str, float | None]]  # baseline signal → (severity, PSI)
    reference_signals: dict[str, str]
    expected_accuracy: float | None
    accuracy: float | None
    labelled: int
    counters: WindowCounters


@dataclass
class RunResult:
    scenario: str
    repeat: int
    model: ModelKey
    shift_at: int | None
    windows: list[WindowObservation]
    events: int
    labels_sent: int
    label_statuses: dict[str, int]
    seconds: float


def _quiet_logger(service: str) -> Logger:
    return Logger(service=f"harness-{service}", level="ERROR")


class _Stream:
    """Draws a window's events from a mixture of pools, seeded per (scenario, repeat)."""

    def __init__(self, pools: Mapping[str, Pool], model: LoadedModel, rng: np.random.Generator) -> None:
        self.pools = pools
        self.model = model
        self.rng = rng
        self._cache: dict[tuple[str, tuple[str, ...] | None], np.ndarray] = {}

    def _rows(self, component: Component) -> np.ndarray:
        key = (component.pool, component.intents)
        if key not in self._cache:
            pool = self.pools[component.pool]
            exclude = self.model.unknown_intents if component.pool != "unseen" else ()
            rows = pool.indices(component.intents, exclude)
            if rows.size == 0:
                raise ValueError(f"no rows in pool {component.pool} for intents {component.intents}")
            self._cache[key] = rows
        return self._cache[key]

    def draw(self, n: int, mixture: Sequence[Component]) -> list[tuple[str, int]]:
        weights = np.asarray([c.weight for c in mixture], dtype=np.float64)
        which = self.rng.choice(len(mixture), size=n, p=weights / weights.sum())
        out: list[tuple[str, int]] = []
        for j in which:
            rows = self._rows(mixture[int(j)])
            out.append((mixture[int(j)].pool, int(rows[self.rng.integers(rows.size)])))
        return out


class Simulator:
    """Runs scenarios against fresh moto tables, one drift run per closed window."""

    def __init__(
        self,
        cfg: HarnessConfig,
        pools: Mapping[str, Pool],
        models: Mapping[str, LoadedModel],
        progress: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.cfg = cfg
        self.pools = pools
        self.models = models
        self.progress = progress
        self.drift_config = DriftConfig(
            window_seconds=cfg.window_seconds,
            grace_seconds=cfg.grace_seconds,
            reference_windows=cfg.reference_windows,
            lookback_windows=2,  # the run happens every window: only the newest closed one is new
            threshold_overrides=dict(cfg.threshold_overrides),
        )

    def run(self, scenario: Scenario, repeat: int) -> RunResult:
        cfg = self.cfg
        model = self.models[scenario.model]
        stationary = scenario.after is None
        n_windows = cfg.stationary_windows if stationary else cfg.warmup_windows + cfg.shift_windows
        shift_at = None if stationary else cfg.warmup_windows
        seed_material = f"{cfg.seed}:{scenario.key}:{repeat}".encode()
        seed = int.from_bytes(hashlib.sha256(seed_material).digest()[:8], "big")
        rng = np.random.default_rng(seed)
        stream = _Stream(self.pools, model, rng)
        manifest = model.runtime.manifest
        started = time.perf_counter()
        windows: list[WindowObservation] = []
        statuses: dict[str, int] = {}
        labels_sent = events_total = 0
        with Sandbox(rollback=False) as sandbox, _silenced_stdout():
            names = sandbox.names
            store = DynamoDBAdapter(sandbox.dynamodb, markers_per_transaction=cfg.markers_per_transaction)
            clock = [T0.timestamp()]
            feedback = FeedbackService(
                store,
                manifest,
                names.windows,
                names.predictions,
                names.feedback,
                logger=_quiet_logger("feedback"),
                clock=lambda: clock[0],
            )
            classify = self._classifier(sandbox, model, clock)
            counters_by_start: dict[str, WindowCounters] = {}
            for w in range(n_windows):
                shifted = shift_at is not None and w >= shift_at
                mixture = scenario.after if shifted and scenario.after else (Component("test", 1.0),)
                start = T0 + timedelta(seconds=w * cfg.window_seconds)
                drawn = stream.draw(cfg.events_per_window, mixture)
                offsets = np.sort(rng.uniform(0.0, cfg.window_seconds - 1.0, size=len(drawn)))
                events = [
                    (
                        f"{scenario.key}-r{repeat}-w{w}-{i}",
                        start + timedelta(seconds=float(offsets[i])),
                        pool,
                        row,
                    )
                    for i, (pool, row) in enumerate(drawn)
                ]
                clock[0] = (start + timedelta(seconds=cfg.window_seconds - 5)).timestamp()
                classify(events)
                events_total += len(events)
                sent, outcome = self._feedback(feedback, events, scenario, shifted, rng, clock[0])
                labels_sent += sent
                for k, v in outcome.items():
                    statuses[k] = statuses.get(k, 0) + v
                now = start + timedelta(seconds=cfg.window_seconds + cfg.grace_seconds)
                run = run_drift(
                    now,
                    store=store,
                    manifest=manifest,
                    windows_table=names.windows,
                    config=self.drift_config,
                    logger=_quiet_logger("drift"),
                    emit=_discard,
                )
                key = keys.iso(start)
                result = next((r for r in run.windows if r.window_start == key), None)
                if result is None:
                    raise RuntimeError(f"the drift run at {keys.iso(now)} did not report window {key}")
                counters = self._read_counters(store, names.windows, manifest, key)
                counters_by_start[key] = counters
                windows.append(_observation(w, key, shifted, result.report, counters))
                self._expire(sandbox, manifest.version, w)
        return RunResult(
            scenario=scenario.key,
            repeat=repeat,
            model=scenario.model,
            shift_at=shift_at,
            windows=windows,
            events=events_total,
            labels_sent=labels_sent,
            label_statuses=statuses,
            seconds=time.perf_counter() - started,
        )

    # -- classification: fast (cached probabilities → routing → recorder) or full (the service) --
    def _classifier(
        self, sandbox: Sandbox, model: LoadedModel, clock: list[float]
    ) -> Callable[[list[tuple[str, datetime, str, int]]], None]:
        cfg = self.cfg
        names = sandbox.names
        manifest = model.runtime.manifest
        if cfg.mode == "full":
            return self._full_classifier(sandbox, model)
        recorder = WindowRecorder(
            DynamoDBAdapter(sandbox.dynamodb, markers_per_transaction=cfg.markers_per_transaction),
            names.windows,
            names.predictions,
            window_seconds=cfg.window_seconds,
            logger=_quiet_logger("recorder"),
            clock=lambda: clock[0],
        )
        threshold, top_k = manifest.thresholds.review_confidence, manifest.thresholds.top_k

        def fast(events: list[tuple[str, datetime, str, int]]) -> None:
            for i in range(0, len(events), cfg.recorder_batch):
                batch = events[i : i + cfg.recorder_batch]
                inputs = [
                    InputEvent(id=eid, time=when, model_input=self.pools[pool].texts[row], payload={"id": eid})
                    for eid, when, pool, row in batch
                ]
                probs = np.vstack([self.pools[pool].probabilities[model.key][row] for _, _, pool, row in batch])
                routed = route_batch(inputs, probs, model.classes, threshold, top_k, cfg.window_seconds)
                failures = recorder.observe([(c.event.id, c) for c in routed], [], model.runtime)
                if failures:
                    raise RuntimeError(f"recorder failed: {next(iter(failures.values()))}")

        return fast

    def _full_classifier(
        self, sandbox: Sandbox, model: LoadedModel
    ) -> Callable[[list[tuple[str, datetime, str, int]]], None]:
        from pigeonhole.capture import CapturePolicy
        from pigeonhole.classify import handler as handler_module
        from pigeonhole.config import Settings

        session = sandbox.session()
        names, queues = sandbox.resource_names, sandbox.provisioned.queues  # the sandbox's topology
        settings = Settings(
            model_dir=model.model_dir,
            review_queue_url=queues[names.review_queue].url,
            quarantine_queue_url=queues[names.quarantine_queue].url,
            output_bus_name=names.output_bus,
            window_seconds=self.cfg.window_seconds,
            windows_table=sandbox.names.windows,
            predictions_table=sandbox.names.predictions,
            # The harness labels a random share of *all* events (label_coverage), as the fast mode's
            # recorder captures them: keep every prediction so both modes join the same labels.
            capture=CapturePolicy.everything(),
        )
        handler_module.logger.setLevel("ERROR")
        service = handler_module.build_service(settings, session=session)
        arn = queues[names.ingest_queue].arn

        def full(events: list[tuple[str, datetime, str, int]]) -> None:
            for i in range(0, len(events), MAX_BATCH_SIZE):
                records = [
                    {
                        "messageId": f"m-{eid}",
                        "receiptHandle": f"h-{eid}",
                        "body": json.dumps({"id": eid, "time": keys.iso(when), "text": self.pools[pool].texts[row]}),
                        "attributes": {
                            "ApproximateReceiveCount": "1",
                            "SentTimestamp": str(int(when.timestamp() * 1e3)),
                        },
                        "messageAttributes": {},
                        "md5OfBody": "",
                        "eventSource": "aws:sqs",
                        "eventSourceARN": arn,
                        "awsRegion": "us-east-1",
                    }
                    for eid, when, pool, row in events[i : i + MAX_BATCH_SIZE]
                ]
                outcomes = service.classify_batch(records)
                bad = [o for o in outcomes.values() if o.error is not None or o.status in ("quarantined", "failed")]
                if bad:
                    raise RuntimeError(f"classifier did not count every event: {bad[0]}")

        return full

    # -- labels ------------------------------------------------------------------------------------
    def _feedback(
        self,
        service: FeedbackService,
        events: Sequence[tuple[str, datetime, str, int]],
        scenario: Scenario,
        shifted: bool,
        rng: np.random.Generator,
        now: float,
    ) -> tuple[int, dict[str, int]]:
        cfg = self.cfg
        flips = dict(scenario.flips) if shifted else {}
        records = []
        for eid, _, pool, row in events:
            label = self.pools[pool].labels[row]
            if label is None or rng.random() >= cfg.label_coverage:
                continue  # off-domain text has no intent of this bank to label
            records.append(
                {
                    "messageId": f"f-{eid}",
                    "body": json.dumps({"id": eid, "label": flips.get(label, label)}),
                    "attributes": {"SentTimestamp": str(int(now * 1000))},
                }
            )
        statuses: dict[str, int] = {}
        batch = MAX_BATCH_SIZE if cfg.mode == "full" else cfg.feedback_batch
        for i in range(0, len(records), batch):
            for outcome in service.process(records[i : i + batch]).values():
                if outcome.status == "failed":
                    raise RuntimeError(f"feedback failed: {outcome.error}")
                statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
        return len(records), statuses

    # -- reading back and expiring -----------------------------------------------------------------
    @staticmethod
    def _read_counters(store: DynamoDBAdapter, table: str, manifest: Manifest, start: str) -> WindowCounters:
        return read_window(store, table, manifest.version, start, keys.counter_layout(manifest))

    def _expire(self, sandbox: Sandbox, version: str, w: int) -> None:
        """What TTL would delete later: every marker so far (all belong to closed, labelled windows and event
        ids never recur) and window items the next drift runs no longer read (older than lookback + reference).
        Only the simulation's speed changes: moto copies whole tables for each transaction."""
        names = sandbox.names
        sandbox.expire_all(names.predictions)
        sandbox.expire_all(names.feedback)
        old = w - self.cfg.reference_windows - self.drift_config.lookback_windows - 1
        if old >= 0:
            start = keys.iso(T0 + timedelta(seconds=old * self.cfg.window_seconds))
            pk = keys.window_pk(version)
            sandbox.expire(
                names.windows, [{keys.PK: pk, keys.SK: start}, {keys.PK: pk, keys.SK: keys.report_sk(start)}]
            )


def _discard(points: Sequence[MetricPoint]) -> None:
    del points


@contextlib.contextmanager
def _silenced_stdout() -> Iterator[None]:
    """Powertools prints EMF blobs (single_metric) to stdout; a simulation of 10^5 events would flood it."""
    with open(os.devnull, "w", encoding="utf-8") as sink, contextlib.redirect_stdout(sink):
        yield


def _observation(
    index: int, start: str, shifted: bool, report: Mapping[str, Any], counters: WindowCounters
) -> WindowObservation:
    signals = {
        name: (str(sig["severity"]), _num(sig.get("statistics", {}).get("psi")))
        for name, sig in (report.get("signals") or {}).items()
    }
    reference = {name: str(sig["severity"]) for name, sig in (report.get("reference_signals") or {}).items()}
    accuracy = report.get("accuracy") or {}
    return WindowObservation(
        index=index,
        start=start,
        shifted=shifted,
        severity=str(report["severity"]),
        baseline_severity=str(report["baseline_severity"]),
        reference_severity=report.get("reference_severity"),
        signals=signals,
        reference_signals=reference,
        expected_accuracy=_num((report.get("metrics") or {}).get("expected_accuracy")),
        accuracy=_num(accuracy.get("accuracy")),
        labelled=int(accuracy.get("labelled") or 0),
        counters=counters,
    )


def _num(value: Any) -> float | None:
    return None if value is None else float(value)
