"""`pigeonhole drift report`: the drift function's per-window report items as a table and a chart.

Reads only what the drift function wrote (``W#<version>`` / ``R#<window start>`` items of the windows
table, see :mod:`pigeonhole.drift.layout`), so what a human sees is exactly what the alarms saw. Realised
accuracy comes from the ``labels`` attribute when labels arrived after the window closed (the drift run
refreshes it), else from the report written at close.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.drift import layout as keys
from pigeonhole.drift.detectors import FEATURE_SIGNAL_PREFIX, SIGNAL_CLASS_MIX, SIGNAL_CONFIDENCE

_REPORT_SK_HIGH = keys.REPORT_PREFIX + "~"  # sorts after every report key
SEVERITY_STYLE = {"ok": "green", "warn": "yellow", "page": "bold red", "insufficient_data": "dim"}
SEVERITY_COLOUR = {"ok": "#2ca02c", "warn": "#ff9f1c", "page": "#d62728", "insufficient_data": "#9e9e9e"}
_SHADE_ALPHA = {"ok": 0.0, "warn": 0.15, "page": 0.18, "insufficient_data": 0.12}


@dataclass(frozen=True)
class WindowRow:
    """One closed window as the drift function judged it (None where a statistic was not computed)."""

    window_start: str
    events: int
    severity: str
    class_mix_psi: float | None
    confidence_psi: float | None
    worst_feature: str | None
    worst_feature_psi: float | None
    expected_accuracy: float | None
    expected_accuracy_reference: float | None
    accuracy: float | None
    accuracy_ci: tuple[float, float] | None
    accuracy_reference: float | None
    labelled: int
    label_coverage: float | None
    psi_warn: float | None
    psi_page: float | None
    accuracy_warn_drop: float | None
    accuracy_page_drop: float | None
    expected_accuracy_warn_drop: float | None

    @property
    def start(self) -> datetime:
        return keys.parse_iso(self.window_start)


def read_report_items(
    store: DynamoDBAdapter, table: str, version: str, *, since: str | None = None, until: str | None = None
) -> list[dict[str, Any]]:
    """Report items of one model version, oldest first (window starts sort by time: fixed-width ISO)."""
    low = keys.report_sk(since) if since else keys.REPORT_PREFIX
    high = keys.report_sk(until) if until else _REPORT_SK_HIGH
    items = store.query(table, keys.window_pk(version), (low, high))
    return sorted((i for i in items if str(i.get(keys.SK, "")).startswith(keys.REPORT_PREFIX)), key=_sk)


def _sk(item: Mapping[str, Any]) -> str:
    return str(item[keys.SK])


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _stat(signal: Mapping[str, Any] | None, name: str, where: str = "statistics") -> float | None:
    if not signal:
        return None
    return _number((signal.get(where) or {}).get(name))


def row_from_item(item: Mapping[str, Any]) -> WindowRow:
    """Flatten one report item (its ``report`` JSON, refreshed ``labels`` JSON when present)."""
    body: dict[str, Any] = json.loads(str(item["report"]))
    signals: dict[str, Any] = body.get("signals") or {}
    features = {
        name[len(FEATURE_SIGNAL_PREFIX) :]: _stat(sig, "psi")
        for name, sig in signals.items()
        if name.startswith(FEATURE_SIGNAL_PREFIX)
    }
    scored = {k: v for k, v in features.items() if v is not None}
    worst = max(scored, key=lambda k: scored[k]) if scored else None
    accuracy = body.get("accuracy")
    accuracy_signal = signals.get("accuracy")
    if item.get("labels"):  # labels that arrived after the close (monotonic refresh by the drift run)
        refreshed = json.loads(str(item["labels"]))
        accuracy = refreshed.get("accuracy") or accuracy
        accuracy_signal = refreshed.get("accuracy_signal") or accuracy_signal
    class_mix = signals.get(SIGNAL_CLASS_MIX)
    expected = signals.get("expected_accuracy")
    thresholds = body.get("thresholds") or {}
    ci = None
    if accuracy and accuracy.get("accuracy_ci_low") is not None:
        ci = (float(accuracy["accuracy_ci_low"]), float(accuracy["accuracy_ci_high"]))
    return WindowRow(
        window_start=str(item.get(keys.ATTR_WINDOW_START) or _sk(item)[len(keys.REPORT_PREFIX) :]),
        events=int(item.get("n", 0)),
        severity=str(item.get("severity", body.get("severity", "insufficient_data"))),
        class_mix_psi=_stat(class_mix, "psi"),
        confidence_psi=_stat(signals.get(SIGNAL_CONFIDENCE), "psi"),
        worst_feature=worst,
        worst_feature_psi=scored.get(worst) if worst else None,
        expected_accuracy=_number((body.get("metrics") or {}).get("expected_accuracy")),
        expected_accuracy_reference=_stat(expected, "reference"),
        accuracy=_number(accuracy.get("accuracy")) if accuracy else None,
        accuracy_ci=ci,
        accuracy_reference=_stat(accuracy_signal, "reference"),
        labelled=int(accuracy.get("labelled", 0)) if accuracy else int(item.get("labelled", 0)),
        label_coverage=_number(accuracy.get("label_coverage")) if accuracy else None,
        psi_warn=_number(thresholds.get("psi_warn")),
        psi_page=_number(thresholds.get("psi_page")),
        accuracy_warn_drop=_number(thresholds.get("accuracy_warn_drop")),
        accuracy_page_drop=_number(thresholds.get("accuracy_page_drop")),
        expected_accuracy_warn_drop=_number(thresholds.get("expected_accuracy_warn_drop")),
    )


def load_rows(
    store: DynamoDBAdapter,
    table: str,
    version: str,
    *,
    since: str | None = None,
    until: str | None = None,
    last: int | None = None,
) -> list[WindowRow]:
    rows = [row_from_item(i) for i in read_report_items(store, table, version, since=since, until=until)]
    return rows[-last:] if last else rows


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100.0 * value:.1f}%"


def render_table(rows: Sequence[WindowRow], title: str) -> Table:
    """The per-window table; verdicts coloured, absent statistics shown as an en dash."""
    table = Table(title=title, header_style="bold")
    for name, justify in (
        ("window start (UTC)", "left"),
        ("events", "right"),
        ("class-mix PSI", "right"),
        ("confidence PSI", "right"),
        ("worst feature PSI", "right"),
        ("expected acc.", "right"),
        ("realised acc.", "right"),
        ("label coverage", "right"),
        ("verdict", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        feature = "–" if r.worst_feature is None else f"{_fmt(r.worst_feature_psi)} ({r.worst_feature})"
        accuracy = "–" if r.accuracy is None else f"{_pct(r.accuracy)} (n={r.labelled})"
        table.add_row(
            r.window_start,
            str(r.events),
            _fmt(r.class_mix_psi),
            _fmt(r.confidence_psi),
            feature,
            _pct(r.expected_accuracy),
            accuracy,
            _pct(r.label_coverage),
            f"[{SEVERITY_STYLE.get(r.severity, '')}]{r.severity}[/]",
        )
    return table


def summary(rows: Sequence[WindowRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.severity] = counts.get(r.severity, 0) + 1
    return counts


def _first(values: Iterable[float | None]) -> float | None:
    return next((v for v in values if v is not None), None)


def _shade_verdicts(axes: Sequence[Any], x: Sequence[datetime], severities: Sequence[str]) -> None:
    """Shade each window's span by its verdict (ok windows stay white), on every panel."""
    spacing = min((b - a for a, b in itertools.pairwise(x)), default=None)
    for start, severity in zip(x, severities, strict=True):
        alpha = _SHADE_ALPHA.get(severity, 0.0)
        if not alpha:
            continue
        half = (spacing / 2) if spacing else None
        for ax in axes:
            if half is None:
                ax.axvline(start, color=SEVERITY_COLOUR[severity], alpha=alpha * 3, lw=6)
            else:
                ax.axvspan(start - half, start + half, color=SEVERITY_COLOUR[severity], alpha=alpha, lw=0)


def write_chart(rows: Sequence[WindowRow], out: Path, title: str) -> Path:
    """PNG: drift statistics (top) and accuracy (bottom) per window, thresholds drawn as lines.

    Agg backend: no display needed (CI, a server, a container). Windows without a statistic leave a gap.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("no report items to chart")
    fig, (ax_psi, ax_acc) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True, height_ratios=(3, 2))
    fig.suptitle(title)
    _draw_psi(ax_psi, rows)
    _draw_accuracy(ax_acc, rows)
    _shade_verdicts((ax_psi, ax_acc), [r.start for r in rows], [r.severity for r in rows])
    _legend_with_verdicts(ax_psi, rows)
    ax_acc.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d\n%H:%M"))
    ax_acc.set_xlabel("window start (UTC)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _nan(values: Iterable[float | None]) -> list[float]:
    return [float("nan") if v is None else v for v in values]


def _draw_psi(ax: Any, rows: Sequence[WindowRow]) -> None:
    """PSI per signal on a symlog axis: thresholds (0.1, 0.25) stay readable next to a PSI of 10."""
    x = [r.start for r in rows]
    series = (
        ("class mix", [r.class_mix_psi for r in rows], "#1f77b4", "o"),
        ("confidence", [r.confidence_psi for r in rows], "#9467bd", "s"),
        ("worst feature", [r.worst_feature_psi for r in rows], "#8c564b", "^"),
    )
    for label, values, colour, marker in series:
        ax.plot(x, _nan(values), marker=marker, ms=4, lw=1.2, color=colour, label=f"PSI {label}")
    psi_warn, psi_page = _first(r.psi_warn for r in rows), _first(r.psi_page for r in rows)
    if psi_warn is not None:
        ax.axhline(psi_warn, color=SEVERITY_COLOUR["warn"], ls="--", lw=1.2, label=f"warn {psi_warn:g}")
    if psi_page is not None:
        ax.axhline(psi_page, color=SEVERITY_COLOUR["page"], ls="--", lw=1.2, label=f"page {psi_page:g}")
    ax.set_ylabel("PSI vs baseline (linear below 1, log above)")
    ax.set_yscale("symlog", linthresh=1.0, linscale=2.0)
    ax.set_ylim(bottom=0)
    top = ax.get_ylim()[1]
    ticks = [t for t in (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0) if t <= top]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.grid(alpha=0.3)


def _draw_accuracy(ax: Any, rows: Sequence[WindowRow]) -> None:
    """Expected (label-free) and realised accuracy, with the accuracy warn/page lines under the reference."""
    x = [r.start for r in rows]
    ax.plot(
        x,
        _nan(r.expected_accuracy for r in rows),
        marker="o",
        ms=4,
        lw=1.2,
        color="#17becf",
        label="expected accuracy (mean confidence)",
    )
    labelled = [(r, r.accuracy, r.accuracy_ci) for r in rows if r.accuracy is not None]
    if labelled:
        ax.errorbar(
            [r.start for r, _, _ in labelled],
            [acc for _, acc, _ in labelled],
            yerr=[
                [acc - ci[0] if ci else 0.0 for _, acc, ci in labelled],
                [ci[1] - acc if ci else 0.0 for _, acc, ci in labelled],
            ],
            marker="D",
            ms=4,
            lw=1.2,
            capsize=2,
            color="#2f4f4f",
            label="realised accuracy (Wilson 95%)",
        )
    reference = _first(r.accuracy_reference for r in rows)
    if reference is not None:
        ax.axhline(reference, color="#555555", ls=":", lw=1, label=f"evaluated accuracy {reference:.3f}")
        for drop, severity in (
            (_first(r.accuracy_warn_drop for r in rows), "warn"),
            (_first(r.accuracy_page_drop for r in rows), "page"),
        ):
            if drop is not None:
                ax.axhline(
                    reference - drop,
                    color=SEVERITY_COLOUR[severity],
                    ls="--",
                    lw=1.2,
                    label=f"accuracy {severity} (−{drop:g})",
                )
    expected_ref = _first(r.expected_accuracy_reference for r in rows)
    expected_drop = _first(r.expected_accuracy_warn_drop for r in rows)
    if expected_ref is not None and expected_drop is not None:
        ax.axhline(
            expected_ref - expected_drop,
            color="#17becf",
            ls="-.",
            lw=1,
            label=f"expected-accuracy warn (baseline {expected_ref:.3f} −{expected_drop:g})",
        )
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, ncol=2, framealpha=0.85)


def _legend_with_verdicts(ax: Any, rows: Sequence[WindowRow]) -> None:
    from matplotlib.patches import Patch

    handles, _ = ax.get_legend_handles_labels()
    shading = [
        Patch(color=SEVERITY_COLOUR[s], alpha=_SHADE_ALPHA[s], label=f"window verdict {s}")
        for s in ("warn", "page", "insufficient_data")
        if any(r.severity == s for r in rows)
    ]
    ax.legend(handles=handles + shading, loc="upper left", fontsize=8, ncol=3, framealpha=0.85)


def print_report(rows: Sequence[WindowRow], console: Console, title: str) -> None:
    console.print(render_table(rows, title))
    counts = summary(rows)
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no report items")
