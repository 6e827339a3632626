"""Detector quality, measured: stream simulated traffic through the real monitoring code and count.

What is real and what is a shortcut (also written into docs/drift-harness.md):

* **Real**: the model package and ONNX runtime (``ModelRuntime.predict_proba``), routing
  (``route_batch``), the :class:`~pigeonhole.drift.recorder.WindowRecorder` (input features, markers,
  exactly-once transactions, window counters) writing to moto DynamoDB, the
  :class:`~pigeonhole.feedback.service.FeedbackService` (labels joined to captures, confusion counters),
  and :func:`~pigeonhole.drift.service.run_drift` (one run per closed window, report items, metrics).
* **Shortcut in ``fast`` mode**: each pool of texts (BANKING77 test set, generated off-domain and
  garbled text, held-out intents) is classified once, in batches of 10 like the event source
  mapping's, and a window samples cached probability rows instead of re-running ONNX per event; the
  recorder is called directly with the routed classifications in batches of 50 (the adapter's chunk)
  instead of through ``ClassifierService.classify_batch`` with SQS records and EventBridge publishing.
  ``full`` mode runs every event through ``ClassifierService.classify_batch`` (built by
  ``pigeonhole.classify.handler.build_service`` against moto SQS/EventBridge/DynamoDB), 10 per batch.
* **Emulation**: moto plays DynamoDB in-process (transactions snapshot each table once, see
  :mod:`.sandbox`); markers of closed windows and windows older than the drift lookback + reference are
  deleted as TTL would; the drift schedule is one ``run_drift`` call per window at window end + grace;
  labels arrive within their window, before its drift run.

The threshold sweep re-judges the *same* window counters (read back from DynamoDB) with
``evaluate_for_manifest`` and other thresholds: exactly what ``PIGEONHOLE_DRIFT_THRESHOLDS`` would do.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
from aws_lambda_powertools import Logger

from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.classify.contract import InputEvent
from pigeonhole.classify.routing import route_batch
from pigeonhole.drift import layout as keys
from pigeonhole.drift import statistics as st
from pigeonhole.drift.counters import WindowCounters
from pigeonhole.drift.detectors import FEATURE_SIGNAL_PREFIX, SIGNAL_CLASS_MIX, SIGNAL_CONFIDENCE
from pigeonhole.drift.recorder import WindowRecorder
from pigeonhole.drift.report import evaluate_for_manifest
from pigeonhole.drift.service import DriftConfig, MetricPoint, run_drift
from pigeonhole.feedback.service import FeedbackService
from pigeonhole.model.manifest import Manifest
from pigeonhole.model.runtime import ModelRuntime
from pigeonhole.naming import MAX_BATCH_SIZE
from pigeonhole_tools.monitoring import synthetic
from pigeonhole_tools.monitoring.sandbox import Sandbox

Mode = Literal["fast", "full"]
ModelKey = Literal["default", "heldout"]
T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # simulated time starts here (any fixed instant works)
SURGE_INTENTS = ("lost_or_stolen_card", "card_payment_not_recognised", "compromised_card")  # a fraud wave
HELDOUT_INTENTS = (  # a product launch the model was trained before: virtual cards and wallets
    "apple_pay_or_google_pay",
    "get_disposable_virtual_card",
    "virtual_card_not_working",
    "getting_virtual_card",
    "disposable_card_limits",
)
CONCEPT_FLIPS: tuple[tuple[str, str], ...] = (  # first = the one-intent concept shift
    ("card_arrival", "card_delivery_estimate"),
    ("exchange_rate", "exchange_charge"),
    ("pending_transfer", "transfer_timing"),
    ("pin_blocked", "change_pin"),
    ("top_up_failed", "top_up_reverted"),
    ("declined_card_payment", "card_not_working"),
    ("request_refund", "Refund_not_showing_up"),
    ("cash_withdrawal_charge", "atm_support"),
    ("card_linking", "activate_my_card"),
    ("passcode_forgotten", "change_pin"),
    ("country_support", "fiat_currency_support"),
    ("terminate_account", "edit_personal_details"),
)


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HarnessConfig:
    """Everything a harness run depends on; printed into the results so the run can be repeated."""

    data_dir: Path
    model_dir: Path
    work_dir: Path
    seed: int = 7
    events_per_window: int = 500
    stationary_windows: int = 200
    repeats: int = 5
    warmup_windows: int = 4  # stationary windows before the shift starts (the shift starts at window k)
    shift_windows: int = 3  # shifted windows per run (delay is measured within these)
    label_coverage: float = 0.4  # share of events that get a label, within their window
    window_seconds: int = 300
    grace_seconds: int = 120
    reference_windows: int = 12
    mode: Mode = "fast"
    recorder_batch: int = 99  # fast mode; full mode uses the event source mapping's 10
    feedback_batch: int = 99
    markers_per_transaction: int = 99  # the adapter's chunk (default 50): fewer, larger moto transactions
    monte_carlo_windows: int = 0  # extra counters-only stationary windows for the page false-alarm rate
    heldout_intents: tuple[str, ...] = HELDOUT_INTENTS
    heldout_epochs: int = 4
    heldout_model_dir: Path | None = None  # a package without the held-out intents; None: train one
    scenarios: tuple[str, ...] = ()  # empty: all
    threshold_overrides: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "events_per_window": self.events_per_window,
            "stationary_windows": self.stationary_windows,
            "repeats": self.repeats,
            "warmup_windows": self.warmup_windows,
            "shift_windows": self.shift_windows,
            "label_coverage": self.label_coverage,
            "window_seconds": self.window_seconds,
            "grace_seconds": self.grace_seconds,
            "reference_windows": self.reference_windows,
            "mode": self.mode,
            "recorder_batch": MAX_BATCH_SIZE if self.mode == "full" else self.recorder_batch,
            "feedback_batch": MAX_BATCH_SIZE if self.mode == "full" else self.feedback_batch,
            "markers_per_transaction": self.markers_per_transaction,
            "heldout_intents": list(self.heldout_intents),
            "heldout_epochs": self.heldout_epochs,
            "threshold_overrides": dict(self.threshold_overrides),
            "monte_carlo_windows": self.monte_carlo_windows,
        }


# -- text pools and their cached predictions -----------------------------------------------------


@dataclass
class Pool:
    """Texts with their true intent (None: no intent of this bank) and, per model, cached probabilities."""

    name: str
    texts: list[str]
    labels: list[str | None]
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)

    def indices(self, intents: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> np.ndarray:
        keep = [
            i
            for i, label in enumerate(self.labels)
            if (intents is None or label in intents) and (label is None or label not in exclude)
        ]
        return np.asarray(keep, dtype=np.int64)


def read_csv(path: Path, text_column: str = "text", label_column: str = "category") -> tuple[list[str], list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r[text_column] for r in rows], [r[label_column] for r in rows]


def build_pools(data_dir: Path, seed: int, heldout: Sequence[str]) -> dict[str, Pool]:
    """The BANKING77 test set, generated off-domain and garbled text, and every row of the held-out intents."""
    test_texts, test_labels = read_csv(data_dir / "test.csv")
    train_texts, train_labels = read_csv(data_dir / "train.csv")
    unseen = [(t, lab) for t, lab in zip(train_texts + test_texts, train_labels + test_labels, strict=True)]
    unseen = [(t, lab) for t, lab in unseen if lab in heldout]
    off = synthetic.off_domain_texts(600, seed)
    return {
        "test": Pool("test", test_texts, list(test_labels)),
        "offdomain": Pool("offdomain", off, [None] * len(off)),
        "garbled": Pool("garbled", synthetic.garbled_texts(test_texts, seed), list(test_labels)),
        "unseen": Pool("unseen", [t for t, _ in unseen], [lab for _, lab in unseen]),
    }


def classify_pool(runtime: ModelRuntime, texts: Sequence[str]) -> np.ndarray:
    """Probabilities in batches of 10, the event source mapping's batch (int8 dynamic quantization scales
    activations per batch, so batch composition nudges probabilities in the 3rd-4th decimal)."""
    rows = [runtime.predict_proba(list(texts[i : i + MAX_BATCH_SIZE])) for i in range(0, len(texts), MAX_BATCH_SIZE)]
    return np.vstack(rows) if rows else np.zeros((0, len(runtime.classes)), dtype=np.float32)


# -- scenarios -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    pool: str
    weight: float
    intents: tuple[str, ...] | None = None  # None: every row (minus the model's unknown intents)


@dataclass(frozen=True)
class Scenario:
    key: str
    kind: Literal["stationary", "prior", "covariate", "unseen_class", "concept"]
    title: str
    model: ModelKey = "default"
    after: tuple[Component, ...] | None = None  # None: stationary throughout
    flips: tuple[tuple[str, str], ...] = ()  # concept shift: true label a is reported as b after the shift
    listed: bool = True  # one of the shifts the issue lists (vs. an extra intensity point)


def scenarios(cfg: HarnessConfig) -> list[Scenario]:
    base = Component("test", 1.0)
    out = [
        Scenario("stationary", "stationary", "stationary: BANKING77 test distribution, sampled with replacement"),
        Scenario(
            "prior-30",
            "prior",
            f"prior shift: {len(SURGE_INTENTS)} fraud intents surge to 30% of traffic",
            after=(Component("test", 0.7), Component("test", 0.3, SURGE_INTENTS)),
        ),
        Scenario(
            "prior-10",
            "prior",
            f"prior shift: {len(SURGE_INTENTS)} fraud intents surge to 10% of traffic",
            after=(Component("test", 0.9), Component("test", 0.1, SURGE_INTENTS)),
            listed=False,
        ),
        Scenario(
            "offdomain-50",
            "covariate",
            "covariate shift: 50% off-domain messages (generated templates)",
            after=(Component("test", 0.5), Component("offdomain", 0.5)),
        ),
        Scenario(
            "offdomain-20",
            "covariate",
            "covariate shift: 20% off-domain messages (generated templates)",
            after=(Component("test", 0.8), Component("offdomain", 0.2)),
            listed=False,
        ),
        Scenario(
            "garbled-100",
            "covariate",
            "covariate shift: every message garbled (word order shuffled, 20% of characters corrupted)",
            after=(Component("garbled", 1.0),),
        ),
        Scenario(
            "garbled-30",
            "covariate",
            "covariate shift: 30% of messages garbled",
            after=(Component("test", 0.7), Component("garbled", 0.3)),
            listed=False,
        ),
        Scenario(
            "unseen-25",
            "unseen_class",
            f"class never seen: {len(cfg.heldout_intents)} held-out intents arrive as 25% of traffic",
            model="heldout",
            after=(Component("test", 0.75), Component("unseen", 0.25)),
        ),
        Scenario(
            "unseen-natural",
            "unseen_class",
            f"class never seen: {len(cfg.heldout_intents)} held-out intents arrive at their natural share "
            f"({len(cfg.heldout_intents)}/77 = {len(cfg.heldout_intents) / 77:.1%})",
            model="heldout",
            after=(
                Component("test", 1.0 - len(cfg.heldout_intents) / 77),
                Component("unseen", len(cfg.heldout_intents) / 77),
            ),
            listed=False,
        ),
        Scenario(
            "concept-1",
            "concept",
            f"concept shift: labels of one intent flip ({CONCEPT_FLIPS[0][0]} → {CONCEPT_FLIPS[0][1]}), "
            "seen only through feedback",
            after=(base,),
            flips=CONCEPT_FLIPS[:1],
        ),
        Scenario(
            "concept-12",
            "concept",
            f"concept shift: labels of {len(CONCEPT_FLIPS)} intents flip, seen only through feedback",
            after=(base,),
            flips=CONCEPT_FLIPS,
            listed=False,
        ),
    ]
    if cfg.scenarios:
        wanted = set(cfg.scenarios)
        unknown = wanted - {s.key for s in out}
        if unknown:
            raise ValueError(f"unknown scenarios {sorted(unknown)}; known: {[s.key for s in out]}")
        out = [s for s in out if s.key in wanted]
    return out


# -- one simulated stream ------------------------------------------------------------------------


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


@dataclass
class LoadedModel:
    key: ModelKey
    model_dir: Path
    runtime: ModelRuntime
    classes: list[str]
    unknown_intents: tuple[str, ...]  # intents of the data the model has no class for


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
        from pigeonhole.classify import handler as handler_module
        from pigeonhole.config import Settings

        session = sandbox.session()
        sqs = session.client("sqs")
        events_client = session.client("events")
        review = sqs.create_queue(QueueName="harness-review")["QueueUrl"]
        quarantine = sqs.create_queue(QueueName="harness-quarantine")["QueueUrl"]
        events_client.create_event_bus(Name="harness-output")
        settings = Settings(
            model_dir=model.model_dir,
            review_queue_url=review,
            quarantine_queue_url=quarantine,
            output_bus_name="harness-output",
            window_seconds=self.cfg.window_seconds,
            windows_table=sandbox.names.windows,
            predictions_table=sandbox.names.predictions,
        )
        handler_module.logger.setLevel("ERROR")
        service = handler_module.build_service(settings, session=session)
        arn = "arn:aws:sqs:us-east-1:000000000000:harness-ingest"

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
        layout = keys.counter_layout(manifest)
        items = store.query(table, keys.window_pk(manifest.version), (start, start + keys.SHARD_SEPARATOR + "~"))
        return WindowCounters.merge_all(layout, (WindowCounters.from_item(i, layout) for i in items))

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


# -- models --------------------------------------------------------------------------------------


def load_model(key: ModelKey, model_dir: Path, all_intents: Sequence[str]) -> LoadedModel:
    runtime = ModelRuntime.load(model_dir, threads=1)
    classes = list(runtime.classes)
    return LoadedModel(key, model_dir, runtime, classes, tuple(sorted(set(all_intents) - set(classes))))


def heldout_model(cfg: HarnessConfig, progress: Callable[[str], None]) -> Path:
    """A BANKING77 model trained without the held-out intents (built once, cached in the work dir).

    Built by the training package's Python API on filtered copies of train/test written to the work dir
    (never into the repo); fewer epochs than the default recipe to keep the harness quick.
    """
    import pigeonhole_tools.training as training_package
    from pigeonhole.model.manifest import load_manifest

    intents = sorted(cfg.heldout_intents)
    recipe = hashlib.sha256()  # the builder's code is part of the cache key: a changed recipe rebuilds
    for source in sorted(Path(training_package.__file__).parent.glob("*.py")):
        recipe.update(source.read_bytes())
    key = json.dumps([intents, cfg.heldout_epochs, cfg.seed, recipe.hexdigest()])
    tag = hashlib.sha256(key.encode()).hexdigest()[:10]
    out = cfg.work_dir / f"model-heldout-{tag}"
    if (out / "manifest.json").is_file():
        return out
    from rich.console import Console

    from pigeonhole_tools.training.build import BuildOptions, run_build
    from pigeonhole_tools.training.progress import Reporter
    from pigeonhole_tools.training.train import TrainParams

    data = cfg.work_dir / f"data-heldout-{tag}"
    data.mkdir(parents=True, exist_ok=True)
    for name in ("train.csv", "test.csv"):
        texts, labels = read_csv(cfg.data_dir / name)
        with (data / name).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "category"])
            writer.writerows((t, lab) for t, lab in zip(texts, labels, strict=True) if lab not in intents)
    progress(f"training the held-out model ({len(intents)} intents left out, {cfg.heldout_epochs} epochs) → {out}")
    run_build(
        BuildOptions(
            data=data / "train.csv",
            eval_data=data / "test.csv",
            name="banking77-heldout",
            version=f"harness-heldout-{tag}",
            out=out,
            params=TrainParams(epochs=cfg.heldout_epochs, seed=cfg.seed),
            latency_repeats=5,
            command="pigeonhole drift harness (held-out intents: " + ", ".join(intents) + ")",
        ),
        Reporter(Console(stderr=True, file=io.StringIO())),
    )
    load_manifest(out)  # fail here, not mid-run, if the package is unreadable
    return out


# -- analysis ------------------------------------------------------------------------------------


def _rate(hits: int, total: int) -> float:
    return hits / total if total else float("nan")


def wilson(hits: int, total: int) -> tuple[float, float]:
    return st.wilson_interval(hits, total) if total else (float("nan"), float("nan"))


def severity_rank(severity: str) -> int:
    return {"insufficient_data": 0, "ok": 1, "warn": 2, "page": 3}[severity]


@dataclass(frozen=True)
class Verdicts:
    """Severities per run and window under one threshold setting (recorded, or re-judged offline)."""

    name: str
    overrides: Mapping[str, Any]
    per_run: Mapping[tuple[str, int], list[str]]


def recorded_verdicts(runs: Sequence[RunResult]) -> Verdicts:
    return Verdicts(
        "as deployed (run_drift)", {}, {(r.scenario, r.repeat): [w.severity for w in r.windows] for r in runs}
    )


def rejudge(
    runs: Sequence[RunResult],
    manifests: Mapping[str, Manifest],
    name: str,
    overrides: Mapping[str, Any],
    reference_windows: int,
) -> Verdicts:
    """Judge the same counters again with other thresholds (pure: ``evaluate_for_manifest``)."""
    per_run: dict[tuple[str, int], list[str]] = {}
    for run in runs:
        manifest = manifests[run.model]
        layout = keys.counter_layout(manifest)
        out: list[str] = []
        for i, w in enumerate(run.windows):
            previous = [x.counters for x in run.windows[max(0, i - reference_windows) : i]]
            reference = WindowCounters.merge_all(layout, previous)
            report = evaluate_for_manifest(
                w.counters, manifest, reference if reference.events > 0 else None, **dict(overrides)
            )
            out.append(report.severity)
        per_run[(run.scenario, run.repeat)] = out
    return Verdicts(name, dict(overrides), per_run)


@dataclass(frozen=True)
class FalseAlarms:
    windows: int
    page: int
    warn_or_page: int
    insufficient: int

    @property
    def page_rate(self) -> float:
        return _rate(self.page, self.windows)

    @property
    def warn_rate(self) -> float:
        return _rate(self.warn_or_page, self.windows)


def false_alarms(verdicts: Verdicts, runs: Sequence[RunResult], scenario: str = "stationary") -> FalseAlarms:
    severities = [s for r in runs if r.scenario == scenario for s in verdicts.per_run[(r.scenario, r.repeat)]]
    return FalseAlarms(
        windows=len(severities),
        page=sum(s == "page" for s in severities),
        warn_or_page=sum(s in ("warn", "page") for s in severities),
        insufficient=sum(s == "insufficient_data" for s in severities),
    )


@dataclass(frozen=True)
class Detection:
    scenario: str
    delays: list[int | None]  # per repeat: windows from the shift start to the first page (1 = the first)
    pre_shift_pages: int  # pages in the stationary warm-up windows of these runs
    pre_shift_windows: int
    warn_delays: list[int | None]

    @property
    def within(self) -> Callable[[int], float]:
        def share(k: int) -> float:
            return _rate(sum(d is not None and d <= k for d in self.delays), len(self.delays))

        return share


def detection(verdicts: Verdicts, runs: Sequence[RunResult], scenario: str) -> Detection:
    delays: list[int | None] = []
    warn_delays: list[int | None] = []
    pre_pages = pre_windows = 0
    for run in (r for r in runs if r.scenario == scenario):
        severities = verdicts.per_run[(run.scenario, run.repeat)]
        k = run.shift_at or 0
        pre_pages += sum(s == "page" for s in severities[:k])
        pre_windows += k
        after = severities[k:]
        delays.append(next((i + 1 for i, s in enumerate(after) if s == "page"), None))
        warn_delays.append(next((i + 1 for i, s in enumerate(after) if s in ("warn", "page")), None))
    return Detection(scenario, delays, pre_pages, pre_windows, warn_delays)


def shift_psi(runs: Sequence[RunResult], manifests: Mapping[str, Manifest], scenario: str) -> dict[str, float]:
    """Population PSI of the shift against the baseline, per signal: all shifted windows of all repeats
    merged (thousands of events, so sampling noise adds only ~(bins − 1) / n)."""
    chosen = [r for r in runs if r.scenario == scenario]
    if not chosen:
        return {}
    manifest = manifests[chosen[0].model]
    layout = keys.counter_layout(manifest)
    merged = WindowCounters.merge_all(layout, (w.counters for r in chosen for w in r.windows if w.shifted))
    if scenario == "stationary" or merged.events == 0:
        merged = WindowCounters.merge_all(layout, (w.counters for r in chosen for w in r.windows))
    return population_psi(merged, manifest)


def population_psi(window: WindowCounters, manifest: Manifest) -> dict[str, float]:
    baseline = manifest.drift_baseline
    eps = st.PSI_EPSILON
    out = {
        SIGNAL_CLASS_MIX: st.psi(np.asarray(baseline.class_prior) * baseline.n_events, window.class_counts, eps),
        SIGNAL_CONFIDENCE: st.psi(baseline.confidence.counts, window.confidence_counts, eps),
    }
    for name, hist in sorted(baseline.features.items()):
        out[f"{FEATURE_SIGNAL_PREFIX}{name}"] = st.psi(hist.counts, window.feature_counts[name], eps)
    return out


def mean_window_psi(runs: Sequence[RunResult], scenario: str, shifted: bool = True) -> dict[str, float]:
    """Mean per-window PSI per signal (what the detector saw) over the shifted (or all) windows."""
    values: dict[str, list[float]] = {}
    for r in runs:
        if r.scenario != scenario:
            continue
        for w in r.windows:
            if shifted and not w.shifted and r.shift_at is not None:
                continue
            for name, (_, psi) in w.signals.items():
                if psi is not None:
                    values.setdefault(name, []).append(psi)
    return {k: float(np.mean(v)) for k, v in values.items()}


def trigger_counts(runs: Sequence[RunResult], scenario: str = "stationary") -> dict[str, dict[str, int]]:
    """Which signals raised the verdicts of stationary windows (baseline page/warn, reference warn)."""
    page: dict[str, int] = {}
    warn: dict[str, int] = {}
    reference: dict[str, int] = {}
    for r in runs:
        if r.scenario != scenario:
            continue
        for w in r.windows:
            for name, (severity, _) in w.signals.items():
                if severity == "page":
                    page[name] = page.get(name, 0) + 1
                elif severity == "warn":
                    warn[name] = warn.get(name, 0) + 1
            for name, severity in w.reference_signals.items():
                if severity in ("warn", "page"):
                    reference[name] = reference.get(name, 0) + 1
    return {"baseline_page": page, "baseline_warn": warn, "reference_warn": reference}


def merged_stationary(
    runs: Sequence[RunResult], manifest: Manifest, factor: int, overrides: Mapping[str, Any], reference_windows: int
) -> FalseAlarms:
    """False alarms if windows were ``factor`` times longer: consecutive stationary windows merged (the
    counters are mergeable), each judged against the previous merged windows as its trailing reference."""
    layout = keys.counter_layout(manifest)
    severities: list[str] = []
    for r in (r for r in runs if r.scenario == "stationary"):
        merged = [
            WindowCounters.merge_all(layout, (w.counters for w in r.windows[i : i + factor]))
            for i in range(0, len(r.windows) - factor + 1, factor)
        ]
        for i, window in enumerate(merged):
            reference = WindowCounters.merge_all(layout, merged[max(0, i - reference_windows) : i])
            report = evaluate_for_manifest(
                window, manifest, reference if reference.events > 0 else None, **dict(overrides)
            )
            severities.append(report.severity)
    return FalseAlarms(
        windows=len(severities),
        page=sum(s == "page" for s in severities),
        warn_or_page=sum(s in ("warn", "page") for s in severities),
        insufficient=sum(s == "insufficient_data" for s in severities),
    )


# -- a candidate detector for concept shift (not in the deployed code) ---------------------------


def precision_alarm(
    window: WindowCounters, manifest: Manifest, alpha: float = 0.01, prior_weight: float = 20.0
) -> bool:
    """Candidate: page when some predicted class's labelled precision is implausibly low.

    One-sided exact binomial test per predicted class p: P(X <= correct_p | n_p, pi_p), with pi_p the
    class's evaluated int8 precision shrunk towards the overall accuracy (``prior_weight`` pseudo-events)
    and capped at 0.98 so a class that was perfect on 40 test rows does not page on its first miss;
    Bonferroni over the classes with labels. A flipped intent drives its precision to ~0 in a window.
    """
    metrics = manifest.metrics.get("int8")
    if not isinstance(metrics, Mapping):
        return False
    per_class = metrics.get("per_class")
    overall = metrics.get("accuracy")
    if not isinstance(per_class, Mapping) or not isinstance(overall, int | float):
        return False
    labelled = window.confusion.sum(axis=1)
    tested = [p for p in range(window.layout.n_classes) if labelled[p] > 0]
    if not tested:
        return False
    level = alpha / len(tested)
    for p in tested:
        info = per_class.get(manifest.classes[p])
        if not isinstance(info, Mapping):
            continue
        support = float(info.get("support", 0) or 0)
        precision = float(info.get("precision", overall) or 0.0)
        pi = min((support * precision + prior_weight * float(overall)) / (support + prior_weight), 0.98)
        n, k = int(labelled[p]), int(window.confusion[p, p])
        if _binom_cdf(k, n, pi) < level:
            return True
    return False


def _binom_cdf(k: int, n: int, p: float) -> float:
    return float(sum(math.comb(n, i) * p**i * (1.0 - p) ** (n - i) for i in range(k + 1)))


def candidate_verdicts(runs: Sequence[RunResult], manifests: Mapping[str, Manifest], base: Verdicts) -> Verdicts:
    """The deployed verdicts, raised to page where the per-class precision candidate fires."""
    per_run: dict[tuple[str, int], list[str]] = {}
    for run in runs:
        manifest = manifests[run.model]
        recorded = base.per_run[(run.scenario, run.repeat)]
        per_run[(run.scenario, run.repeat)] = [
            "page" if precision_alarm(w.counters, manifest) else s for w, s in zip(run.windows, recorded, strict=True)
        ]
    return Verdicts(f"{base.name} + per-class precision test", base.overrides, per_run)


# -- many more stationary windows, counters only (a tighter false-alarm estimate) -----------------


MONTE_CARLO_SETTINGS: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("as deployed (noise floor z=4)", {}),
    ("fixed 0.25 line (psi_noise_z null)", {"psi_noise_z": None}),
    ("fixed line, psi_page 0.30", {"psi_noise_z": None, "psi_page": 0.30}),
    ("noise floor z=3", {"psi_noise_z": 3.0}),
)


def counters_monte_carlo(
    pool: Pool, model: LoadedModel, windows: int, events: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Page rates of stationary windows built straight from cached predictions, without DynamoDB.

    Each window samples ``events`` rows of the pool (with replacement), counts them with the recorder's
    own ``WindowCounters.from_batch`` (class, confidence as routed, input features) and is judged by
    ``evaluate_for_manifest`` against the baseline only: no labels and no trailing reference, which can
    only warn. So this measures page false alarms of the label-free signals (every stationary page of
    the full run came from them) on thousands of windows, where 200 windows give a wide interval.
    """
    from pigeonhole.model.features import input_features, normalize_batch

    manifest = model.runtime.manifest
    layout = keys.counter_layout(manifest)
    rows = pool.indices(None, model.unknown_intents)
    probs = pool.probabilities[model.key][rows]
    pred = probs.argmax(axis=1)
    conf = np.round(probs.max(axis=1).astype(np.float64), 6)
    review = conf < manifest.thresholds.review_confidence
    features = input_features(normalize_batch([pool.texts[i] for i in rows]), model.runtime.vocabulary)
    rng = np.random.default_rng([seed, windows, events])
    settings = {name: dict(overrides) for name, overrides in MONTE_CARLO_SETTINGS}
    pages = dict.fromkeys(settings, 0)
    for _ in range(windows):
        idx = rng.integers(rows.size, size=events)
        window = WindowCounters.from_batch(
            layout, pred[idx], conf[idx], {k: v[idx] for k, v in features.items()}, review=review[idx]
        )
        for name, overrides in settings.items():
            pages[name] += evaluate_for_manifest(window, manifest, **overrides).severity == "page"
    return {
        name: {
            "windows": windows,
            "page": hits,
            "page_rate": _rate(hits, windows),
            "page_rate_ci95": wilson(hits, windows),
        }
        for name, hits in pages.items()
    }


# -- the whole measurement -----------------------------------------------------------------------

SWEEPS: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("fixed 0.25 line (psi_noise_z null)", {"psi_noise_z": None}),
    ("fixed line, psi_page 0.30", {"psi_noise_z": None, "psi_page": 0.30}),
    ("fixed line, psi_page 0.35", {"psi_noise_z": None, "psi_page": 0.35}),
    ("fixed line, psi_epsilon 1e-3", {"psi_noise_z": None, "psi_epsilon": 1e-3}),
    ("noise floor z=3", {"psi_noise_z": 3.0}),
    ("psi_warn 0.2, js 0.2", {"psi_warn": 0.2, "js_distance": 0.2}),
)


@dataclass
class HarnessResult:
    config: HarnessConfig
    runs: list[RunResult]
    scenarios: list[Scenario]
    manifests: dict[str, Manifest]
    model_dirs: dict[str, str]
    seconds: float
    classify_seconds: float
    sweeps: list[Verdicts] = field(default_factory=list)
    monte_carlo: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Every number the report shows, as plain JSON."""
        recorded = recorded_verdicts(self.runs)
        all_verdicts = [recorded, *self.sweeps]
        out: dict[str, Any] = {
            "config": self.config.describe(),
            "models": {
                k: {"dir": self.model_dirs[k], "name": m.name, "version": m.version, "int8": _int8_summary(m)}
                for k, m in self.manifests.items()
            },
            "seconds": round(self.seconds, 1),
            "classify_seconds": round(self.classify_seconds, 1),
            "events": sum(r.events for r in self.runs),
            "windows": sum(len(r.windows) for r in self.runs),
            "labels_sent": sum(r.labels_sent for r in self.runs),
            "label_statuses": _sum_dicts(r.label_statuses for r in self.runs),
            "settings": [],
        }
        for v in all_verdicts:
            fa = false_alarms(v, self.runs)
            entry: dict[str, Any] = {
                "name": v.name,
                "overrides": dict(v.overrides),
                "stationary": {
                    "windows": fa.windows,
                    "page": fa.page,
                    "page_rate": fa.page_rate,
                    "page_rate_ci95": wilson(fa.page, fa.windows),
                    "warn_or_page": fa.warn_or_page,
                    "warn_rate": fa.warn_rate,
                    "warn_rate_ci95": wilson(fa.warn_or_page, fa.windows),
                },
                "shifts": {},
            }
            for s in self.scenarios:
                if s.after is None:
                    continue
                d = detection(v, self.runs, s.key)
                entry["shifts"][s.key] = {
                    "delays": d.delays,
                    "warn_delays": d.warn_delays,
                    "paged_within_1": d.within(1),
                    "paged_within_2": d.within(2),
                    "pre_shift_pages": d.pre_shift_pages,
                    "pre_shift_windows": d.pre_shift_windows,
                }
            out["settings"].append(entry)
        manifest = self.manifests["default"]
        out["merged_windows"] = {
            str(f * self.config.events_per_window): _fa_dict(
                merged_stationary(
                    self.runs, manifest, f, self.config.threshold_overrides, self.config.reference_windows
                )
            )
            for f in (2, 4)
            if any(r.scenario == "stationary" for r in self.runs)
        }
        out["scenarios"] = [
            {
                "key": s.key,
                "kind": s.kind,
                "title": s.title,
                "model": s.model,
                "listed": s.listed,
                "population_psi": shift_psi(self.runs, self.manifests, s.key),
                "mean_window_psi": mean_window_psi(self.runs, s.key),
                "runs": sum(r.scenario == s.key for r in self.runs),
            }
            for s in self.scenarios
        ]
        out["stationary_triggers"] = trigger_counts(self.runs)
        out["monte_carlo"] = self.monte_carlo
        return _json_safe(out)


def _fa_dict(fa: FalseAlarms) -> dict[str, Any]:
    return {
        "windows": fa.windows,
        "page": fa.page,
        "page_rate": fa.page_rate,
        "warn_or_page": fa.warn_or_page,
        "warn_rate": fa.warn_rate,
    }


def _int8_summary(m: Manifest) -> dict[str, Any]:
    int8 = m.metrics.get("int8")
    if not isinstance(int8, Mapping):
        return {}
    return {k: int8.get(k) for k in ("accuracy", "macro_f1", "mean_confidence", "n_events")}


def _sum_dicts(items: Iterator[dict[str, int]] | Sequence[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in items:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return total


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def run_harness(cfg: HarnessConfig, progress: Callable[[str], None] = lambda _: None) -> HarnessResult:
    """Build the pools, classify them once per model, run every scenario, and re-judge for the sweep."""
    started = time.perf_counter()
    chosen = scenarios(cfg)
    pools = build_pools(cfg.data_dir, cfg.seed, cfg.heldout_intents)
    all_intents = sorted({lab for lab in pools["test"].labels if lab is not None})
    models: dict[str, LoadedModel] = {"default": load_model("default", cfg.model_dir, all_intents)}
    if any(s.model == "heldout" for s in chosen):
        heldout_dir = cfg.heldout_model_dir or heldout_model(cfg, progress)
        models["heldout"] = load_model("heldout", heldout_dir, all_intents)
    t_classify = time.perf_counter()
    needed = {"test"} | {c.pool for s in chosen for c in (s.after or ())}
    done: dict[Path, str] = {}  # a model directory classified once, whatever its role
    for key, model in models.items():
        same = done.get(model.model_dir.resolve())
        for name in sorted(needed):
            pool = pools[name]
            pool.probabilities[key] = pool.probabilities[same] if same else classify_pool(model.runtime, pool.texts)
        done.setdefault(model.model_dir.resolve(), key)
        progress(f"classified {sum(len(pools[n].texts) for n in needed)} pool texts with the {key} model")
    classify_seconds = time.perf_counter() - t_classify
    simulator = Simulator(cfg, pools, models, progress)
    runs: list[RunResult] = []
    for s in chosen:
        for repeat in range(1 if s.after is None else cfg.repeats):
            run = simulator.run(s, repeat)
            runs.append(run)
            severities = [w.severity for w in run.windows]
            progress(
                f"{s.key} #{repeat}: {len(run.windows)} windows, {run.events} events in {run.seconds:.1f} s; "
                f"page {severities.count('page')}, warn {severities.count('warn')}"
            )
    manifests = {k: m.runtime.manifest for k, m in models.items()}
    result = HarnessResult(
        config=cfg,
        runs=runs,
        scenarios=chosen,
        manifests=manifests,
        model_dirs={k: str(m.model_dir) for k, m in models.items()},
        seconds=0.0,
        classify_seconds=classify_seconds,
    )
    base = rejudge(runs, manifests, "as deployed, re-judged offline", cfg.threshold_overrides, cfg.reference_windows)
    mismatches = sum(
        a != b
        for key, severities in recorded_verdicts(runs).per_run.items()
        for a, b in zip(severities, base.per_run[key], strict=True)
    )
    if mismatches:
        raise RuntimeError(f"offline re-judging disagrees with run_drift on {mismatches} windows: sweep invalid")
    result.sweeps = [
        rejudge(runs, manifests, name, {**cfg.threshold_overrides, **o}, cfg.reference_windows) for name, o in SWEEPS
    ]
    result.sweeps.append(candidate_verdicts(runs, manifests, recorded_verdicts(runs)))
    if cfg.monte_carlo_windows:
        t_mc = time.perf_counter()
        result.monte_carlo = counters_monte_carlo(
            pools["test"], models["default"], cfg.monte_carlo_windows, cfg.events_per_window, cfg.seed
        )
        progress(f"counters-only Monte Carlo: {cfg.monte_carlo_windows} windows in {time.perf_counter() - t_mc:.0f} s")
    result.seconds = time.perf_counter() - started
    return result


def with_overrides(cfg: HarnessConfig, **changes: Any) -> HarnessConfig:
    return replace(cfg, **changes)
