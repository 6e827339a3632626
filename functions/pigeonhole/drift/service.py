"""The drift run: judge every closed, unreported window of the current model version, once.

A window ``[start, start + window_seconds)`` is *closed* when ``start + window_seconds + grace <= now``
(the grace lets late batches and SQS retries land). Each run reads the window items of the lookback
(plus the trailing-reference windows before it) and the report keys already written, and for each
closed window without a report: merges its shards, merges the previous ``reference_windows`` windows
into a trailing reference, evaluates it (:func:`pigeonhole.drift.report.evaluate_for_manifest`:
baseline verdicts page, reference verdicts warn at most), emits the catalog metrics, then writes the
report item ``R#<start>`` only if absent. Re-running is a no-op; two overlapping runs write one report.

The grace should cover a classifier retry (the stack sets it with ``config.drift_grace_seconds``: ingest
visibility timeout + batching window + function timeout). Events that land later still count: the report
keeps the event count it judged (``n``), and a later run within the lookback that finds the window grew
judges it again, emits its metrics again, and overwrites the report only while the stored ``n`` is
smaller (``rejudged`` counts how often), so concurrent runs converge on the largest count.

Windows with no events are reported too (``insufficient_data``, WindowEvents 0) from the first window
of the version seen in the lookback onwards, so a traffic stop is visible, not silent.

Labels arrive after the report (hours, days). Each run also refreshes the label-based part of earlier
reports in the lookback whose window gained labels (``labels`` attribute; the drift verdict and its
metrics stay as emitted at close).

Metrics are emitted *before* the report is written: a crash in between re-emits them on the next run
(a duplicate datapoint, harmless for Maximum alarms) rather than losing a page.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from pigeonhole import metrics_catalog as mc
from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.drift import compaction
from pigeonhole.drift import layout as keys
from pigeonhole.drift.counters import CounterLayout, WindowCounters
from pigeonhole.drift.detectors import MonitorThresholds
from pigeonhole.drift.report import WindowReport, evaluate_for_manifest
from pigeonhole.exceptions import ConfigurationError
from pigeonhole.model.manifest import Manifest

HISTOGRAM_STATISTICS = (("psi", mc.DRIFT_PSI), ("js", mc.DRIFT_JS))


@dataclass(frozen=True)
class DriftConfig:
    """How windows are cut and judged. ``window_seconds`` must equal the classifier's."""

    window_seconds: int = 300
    grace_seconds: int = 120
    reference_windows: int = 12
    lookback_windows: int = 288
    window_ttl_days: int = 90
    threshold_overrides: Mapping[str, Any] = field(default_factory=dict)
    shards: int = 1  # the classifier's window_shards: the batch-item partitions of a window

    def __post_init__(self) -> None:
        if self.window_seconds < 1 or self.lookback_windows < 1 or self.shards < 1:
            raise ValueError("window_seconds, lookback_windows and shards must be >= 1")
        if self.grace_seconds < 0 or self.reference_windows < 0:
            raise ValueError("grace_seconds and reference_windows must be >= 0")


@dataclass(frozen=True)
class MetricPoint:
    """One CloudWatch datapoint, named and dimensioned as in the metrics catalog."""

    name: str
    unit: str
    value: float
    dimensions: Mapping[str, str]


@dataclass
class WindowResult:
    window_start: str
    severity: str
    events: int
    written: bool  # False: another run wrote this window's report first
    report: dict[str, Any]
    metrics: list[MetricPoint]


@dataclass
class DriftRun:
    now: str
    model_version: str
    windows: list[WindowResult] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)  # windows whose label metrics were updated
    rejudged: list[WindowResult] = field(default_factory=list)  # windows judged again: more events landed

    def summary(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "model_version": self.model_version,
            "reported": [{"window": w.window_start, "severity": w.severity, "events": w.events} for w in self.windows],
            "refreshed": self.refreshed,
            "rejudged": [{"window": w.window_start, "severity": w.severity, "events": w.events} for w in self.rejudged],
        }


def emit_emf(points: Sequence[MetricPoint]) -> None:
    """Print each point as CloudWatch Embedded Metric Format (Powertools), with exactly its dimensions."""
    for p in points:
        with single_metric(
            name=p.name,
            unit=MetricUnit(p.unit),
            value=p.value,
            namespace=mc.NAMESPACE,
            default_dimensions=dict(p.dimensions),
        ):
            pass


def window_metrics(report: WindowReport, version: str) -> list[MetricPoint]:
    """The catalog's drift metrics for one window report."""
    dims = {mc.DIM_SERVICE: mc.SERVICE_DRIFT, mc.DIM_MODEL_VERSION: version}
    points = [MetricPoint(mc.WINDOW_EVENTS.name, mc.WINDOW_EVENTS.unit, float(report.metrics.events), dims)]
    if report.severity_value is not None:
        points.append(MetricPoint(mc.DRIFT_SEVERITY.name, mc.DRIFT_SEVERITY.unit, float(report.severity_value), dims))
    if report.metrics.expected_accuracy is not None:
        points.append(
            MetricPoint(
                mc.EXPECTED_ACCURACY.name, mc.EXPECTED_ACCURACY.unit, float(report.metrics.expected_accuracy), dims
            )
        )
    for result in report.baseline:
        for statistic, metric in HISTOGRAM_STATISTICS:
            value = result.statistics.get(statistic)
            if isinstance(value, int | float):
                points.append(
                    MetricPoint(metric.name, metric.unit, float(value), {**dims, mc.DIM_SIGNAL: result.signal})
                )
    return points


class DriftService:
    def __init__(
        self,
        store: DynamoDBAdapter,
        manifest: Manifest,
        windows_table: str,
        config: DriftConfig | None = None,
        *,
        logger: Logger | None = None,
        emit: Callable[[Sequence[MetricPoint]], None] = emit_emf,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.version = manifest.version
        self.windows_table = windows_table
        self.config = config or DriftConfig()
        self.layout: CounterLayout = keys.counter_layout(manifest)
        self.logger = logger or Logger(service=mc.SERVICE_DRIFT, child=True)
        self.emit = emit
        try:  # fail at cold start, not at the first window, on a misspelt override
            self.thresholds = MonitorThresholds.from_manifest(
                manifest.drift_thresholds, **dict(self.config.threshold_overrides)
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"invalid drift threshold overrides: {exc}") from exc

    # -- the run ---------------------------------------------------------------------------------
    def run(self, now: datetime) -> DriftRun:
        cfg = self.config
        ws = cfg.window_seconds
        t = int(now.timestamp())
        last = (t - cfg.grace_seconds - ws) // ws * ws  # the latest closed window start
        first = last - (cfg.lookback_windows - 1) * ws
        ref_first = first - cfg.reference_windows * ws
        run = DriftRun(now=keys.iso(now), model_version=self.version)

        windows = self._read_windows(ref_first, last, now)
        reports = {
            str(item[keys.SK])[len(keys.REPORT_PREFIX) :]: item
            for item in self.store.query(
                self.windows_table,
                keys.window_pk(self.version),
                (keys.report_sk(_iso(first)), keys.report_sk(_iso(last))),
                projection=[keys.SK, "labelled", "n", "rejudged"],
            )
        }
        seen = [s for s in (_epoch(w) for w in (*windows, *reports)) if first <= s <= last]
        if not seen:
            self.logger.info("no windows of this model version in the lookback", extra={"now": run.now})
            return run
        for start in range(min(seen), last + ws, ws):
            key = _iso(start)
            if key in reports:
                window = windows.get(key)
                if window is not None and window.events > int(reports[key].get("n", 0)):
                    run.rejudged.append(self._report(key, start, windows, now, previous=reports[key]))
                else:
                    self._refresh_labels(key, window, reports[key], start, windows, run)
                continue
            run.windows.append(self._report(key, start, windows, now))
        self.logger.info("drift run done", extra=run.summary())
        return run

    def _read_windows(self, ref_first: int, last: int, now: datetime) -> dict[str, WindowCounters]:
        """Window counters by start: first merge the batch items of closed windows not merged yet (or
        with late items since), then read the merges and the window items (labels)."""
        ws = self.config.window_seconds
        starts = [_iso(s) for s in range(ref_first, last + ws, ws)]
        merged = compaction.compact_closed(
            self.store,
            self.windows_table,
            self.version,
            starts,
            self.layout,
            shards=self.config.shards,
            now=now,
            ttl_days=self.config.window_ttl_days,
        )
        if merged:
            self.logger.info("windows merged from batch items", extra={"merged": len(merged), "last": merged[-1]})
        try:
            return compaction.read_windows(
                self.store, self.windows_table, self.version, _iso(ref_first), _iso(last), self.layout
            )
        except ValueError:
            self.logger.exception("unreadable window item; windows skipped")
            return {}

    def _reference(self, start: int, windows: Mapping[str, WindowCounters]) -> tuple[WindowCounters | None, int]:
        ws, n = self.config.window_seconds, self.config.reference_windows
        previous = [windows[k] for k in (_iso(start - i * ws) for i in range(1, n + 1)) if k in windows]
        reference = WindowCounters.merge_all(self.layout, previous)
        return (reference if reference.events > 0 else None), len(previous)

    def _evaluate(self, start: int, windows: Mapping[str, WindowCounters]) -> tuple[WindowCounters, WindowReport, int]:
        key = _iso(start)
        window = windows.get(key) or WindowCounters.empty(self.layout)
        reference, used = self._reference(start, windows)
        report = evaluate_for_manifest(window, self.manifest, reference, **dict(self.config.threshold_overrides))
        return window, report, used

    def _report(
        self,
        key: str,
        start: int,
        windows: Mapping[str, WindowCounters],
        now: datetime,
        previous: Mapping[str, Any] | None = None,
    ) -> WindowResult:
        """Judge a window and write its report: once (``previous`` None), or again over a report that
        judged fewer events (written only while the stored ``n`` is smaller)."""
        window, report, used = self._evaluate(start, windows)
        body = report.to_dict()
        points = window_metrics(report, self.version)
        self.emit(points)
        item: dict[str, Any] = {
            keys.PK: keys.window_pk(self.version),
            keys.SK: keys.report_sk(key),
            keys.ATTR_MODEL_VERSION: self.version,
            keys.ATTR_WINDOW_START: key,
            "window_end": _iso(start + self.config.window_seconds),
            "created_at": keys.iso(now),
            "severity": report.severity,
            "n": window.events,
            "labelled": window.labelled,
            "reference_windows": used,
            "report": json.dumps(body, separators=(",", ":"), allow_nan=False),
            keys.TTL: keys.expires_at(float(start), self.config.window_ttl_days),
        }
        if report.severity_value is not None:
            item["severity_value"] = report.severity_value
        if previous is None:
            written = self.store.put_if_absent(self.windows_table, item)
            message = "window reported" if written else "window already reported by another run"
        else:
            item["rejudged"] = int(previous.get("rejudged", 0)) + 1
            item["previous_n"] = int(previous.get("n", 0))
            written = self.store.put_if_greater(self.windows_table, item, "n")
            message = "window judged again: more events landed" if written else "window already re-judged"
        log = self.logger.warning if report.severity in ("warn", "page") else self.logger.info
        log(message, extra={"window": key, "severity": report.severity, "events": window.events, "written": written})
        return WindowResult(key, report.severity, window.events, written, body, points)

    def _refresh_labels(
        self,
        key: str,
        window: WindowCounters | None,
        report_item: Mapping[str, Any],
        start: int,
        windows: Mapping[str, WindowCounters],
        run: DriftRun,
    ) -> None:
        """Labels that arrived after the report: recompute the label metrics (monotonic in ``labelled``)."""
        if window is None or window.labelled <= int(report_item.get("labelled", 0)):
            return
        _, report, _ = self._evaluate(start, windows)
        body = report.to_dict()
        labels = {"accuracy": body["accuracy"], "accuracy_signal": body["signals"].get("accuracy")}
        updated = self.store.set_if_greater(
            self.windows_table,
            {keys.PK: keys.window_pk(self.version), keys.SK: keys.report_sk(key)},
            "labelled",
            window.labelled,
            {"labels": json.dumps(labels, separators=(",", ":"), allow_nan=False), "labels_updated_at": run.now},
        )
        if updated:
            run.refreshed.append(key)


def run_drift(
    now: datetime,
    *,
    store: DynamoDBAdapter,
    manifest: Manifest,
    windows_table: str,
    config: DriftConfig | None = None,
    logger: Logger | None = None,
    emit: Callable[[Sequence[MetricPoint]], None] = emit_emf,
) -> DriftRun:
    """One drift run at ``now`` (the handler, the local runtime and simulations call this).

    ``emit`` receives each window's metric points; the default prints EMF to stdout. The local runtime
    may pass one that calls CloudWatch ``PutMetricData`` instead.
    """
    return DriftService(store, manifest, windows_table, config, logger=logger, emit=emit).run(now)


def _iso(epoch: int) -> str:
    return keys.iso(datetime.fromtimestamp(epoch, tz=UTC))


def _epoch(start: str) -> int:
    return int(keys.parse_iso(start).timestamp())
