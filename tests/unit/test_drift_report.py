"""Window reports: baseline vs trailing reference, severities, label metrics, JSON without NaN."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from pigeonhole.drift.counters import CounterLayout, WindowCounters
from pigeonhole.drift.detectors import MonitorThresholds
from pigeonhole.drift.report import evaluate_for_manifest, evaluate_window, reference_accuracy_from_metrics
from pigeonhole.model.manifest import DriftBaseline, DriftThresholds, Histogram, Manifest

CLASSES = ["billing", "outage", "spam"]
PRIOR = [0.5, 0.3, 0.2]
CONF_EDGES = [round(x, 10) for x in np.linspace(0.0, 1.0, 11)]
FEATURE_EDGES = {
    "length_chars": [0.0, 20.0, 30.0, 40.0, 55.0, 75.0, 100.0, 150.0, 250.0, 2000.0],
    "tokens": [0.0, 4.0, 6.0, 8.0, 11.0, 15.0, 20.0, 30.0, 50.0, 400.0],
    "oov_share": [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 1.0],
}
BASELINE_N = 20_000


def _simulate(
    seed: int, n: int, *, length_shift: float = 0.0, prior: list[float] = PRIOR, conf_a: float = 8.0
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """A toy population: length is log-normal, tokens follow length, confidence is Beta(conf_a, 1.5)."""
    rng = np.random.default_rng(seed)
    pred = rng.choice(3, size=n, p=prior)
    conf = np.clip(rng.beta(conf_a, 1.5, size=n), 1 / 3, 1.0)
    length = rng.lognormal(4.0 + length_shift, 0.6, size=n)
    features = {
        "length_chars": length,
        "tokens": np.maximum(1.0, np.round(length / 5)),
        "oov_share": rng.beta(1, 12, n),
    }
    return pred, conf, features


def _hist(values: np.ndarray, edges: list[float]) -> Histogram:
    clipped = np.clip(values, edges[0], edges[-1])
    return Histogram(edges=edges, counts=np.histogram(clipped, bins=edges)[0].tolist())


def _baseline() -> DriftBaseline:
    _, conf, features = _simulate(0, BASELINE_N)
    return DriftBaseline(
        n_events=BASELINE_N,
        class_prior=PRIOR,
        confidence=_hist(conf, CONF_EDGES),
        features={name: _hist(features[name], edges) for name, edges in FEATURE_EDGES.items()},
    )


BASELINE = _baseline()
LAYOUT = CounterLayout.from_baseline(BASELINE)


def _window(seed: int, n: int, **shift: Any) -> WindowCounters:
    pred, conf, features = _simulate(seed, n, **shift)
    return WindowCounters.from_batch(LAYOUT, pred, conf, features, review=conf < 0.6)


def _labels(seed: int, window_events: int, n: int, accuracy: float) -> WindowCounters:
    rng = np.random.default_rng(seed)
    pred = rng.choice(3, size=n, p=PRIOR)
    wrong = rng.uniform(size=n) >= accuracy
    true = np.where(wrong, (pred + rng.integers(1, 3, size=n)) % 3, pred)
    conf = np.clip(rng.beta(8.0, 1.5, size=n), 1 / 3, 1.0)
    assert n <= window_events
    return WindowCounters.from_labels(LAYOUT, pred, true, conf, rng.lognormal(7.0, 1.0, size=n))


def _json(report_dict: dict[str, Any]) -> str:
    return json.dumps(report_dict, allow_nan=False)


def _severities(report: Any, against: str = "baseline") -> dict[str, str]:
    results = report.baseline if against == "baseline" else report.reference
    return {r.signal: r.severity for r in results}


# --- label-free drift ------------------------------------------------------------------------------------


def test_a_window_from_the_baseline_population_is_ok() -> None:
    report = evaluate_window(_window(1, 2000), BASELINE, DriftThresholds(), classes=CLASSES, baseline_accuracy=0.9)
    assert _severities(report) == {
        "class_mix": "ok",
        "confidence": "ok",
        "feature:length_chars": "ok",
        "feature:oov_share": "ok",
        "feature:tokens": "ok",
        "expected_accuracy": "ok",
        "accuracy": "insufficient_data",  # no labels yet
    }
    assert report.severity == "ok"
    assert report.severity_value == 0
    assert report.accuracy is None
    assert report.metrics.class_counts.keys() == set(CLASSES)
    assert report.metrics.expected_accuracy == pytest.approx(0.84, abs=0.02)
    _json(report.to_dict())


@pytest.mark.parametrize("n", [0, 1, 150, 199])
def test_small_or_empty_windows_give_insufficient_data_and_no_nan(n: int) -> None:
    report = evaluate_window(_window(2, n), BASELINE, baseline_accuracy=0.9, reference=_window(3, 5000))
    assert set(_severities(report).values()) == {"insufficient_data"}
    assert set(_severities(report, "reference").values()) == {"insufficient_data"}
    assert report.severity == "insufficient_data"
    assert report.severity_value is None  # emit no DriftSeverity datapoint
    text = _json(report.to_dict())
    assert "NaN" not in text
    assert "Infinity" not in text
    if n == 0:
        assert report.metrics.expected_accuracy is None
        assert report.metrics.review_rate is None


def test_a_shifted_feature_pages_and_names_the_feature() -> None:
    report = evaluate_window(_window(4, 2000, length_shift=0.6), BASELINE, classes=CLASSES)
    sev = _severities(report)
    assert sev["feature:length_chars"] == "page"
    assert sev["feature:tokens"] == "page"  # tokens follow length
    assert sev["feature:oov_share"] == "ok"
    assert sev["class_mix"] == "ok"
    assert report.severity == "page"
    assert report.severity_value == 2
    stats = report.result("feature:length_chars").statistics
    assert float(stats["psi"] or 0.0) >= 0.25
    # Bonferroni over the report's chi-square family: (class mix + 3 features) x (baseline, reference)
    assert report.result("feature:length_chars").thresholds["p_value"] == pytest.approx(0.05 / 8)


def test_feature_psi_and_severity_grow_with_the_shift() -> None:
    rank = {"insufficient_data": 0, "ok": 1, "warn": 2, "page": 3}
    psis, ranks = [], []
    for shift in (0.0, 0.1, 0.2, 0.3, 0.5, 0.8):
        result = evaluate_window(_window(5, 3000, length_shift=shift), BASELINE).result("feature:length_chars")
        psis.append(float(result.statistics["psi"] or 0.0))
        ranks.append(rank[result.severity])
    assert psis == sorted(psis)
    assert ranks == sorted(ranks)
    assert ranks[0] == rank["ok"]
    assert ranks[-1] == rank["page"]


def test_class_mix_shift() -> None:
    report = evaluate_window(_window(6, 2000, prior=[0.2, 0.3, 0.5]), BASELINE)
    assert report.result("class_mix").severity == "page"
    assert report.result("feature:length_chars").severity == "ok"


def test_falling_confidence_is_a_label_free_signal() -> None:
    report = evaluate_window(_window(7, 2000, conf_a=3.0), BASELINE)
    assert report.result("confidence").severity in ("warn", "page")
    expected = report.result("expected_accuracy")
    assert expected.severity == "warn"  # label-free: a ticket unless a page margin is configured
    assert float(expected.statistics["drop"] or 0.0) > 0.05
    paging = evaluate_window(_window(7, 2000, conf_a=3.0), BASELINE, MonitorThresholds(expected_accuracy_page_drop=0.1))
    assert paging.result("expected_accuracy").severity == "page"


# --- labels -------------------------------------------------------------------------------------------------


def test_label_metrics_and_realised_accuracy() -> None:
    window = _window(8, 1000) + _labels(9, 1000, 400, accuracy=0.72)
    report = evaluate_window(window, BASELINE, classes=CLASSES, baseline_accuracy=0.9)
    acc = report.accuracy
    assert acc is not None
    assert acc.labelled == 400
    assert acc.label_coverage == pytest.approx(0.4)
    assert acc.accuracy == pytest.approx(0.72, abs=0.05)
    assert acc.accuracy_ci_low < acc.accuracy < acc.accuracy_ci_high
    assert [c.label for c in acc.per_class] == CLASSES
    assert sum(c.support for c in acc.per_class) == 400
    assert acc.ece is not None
    assert 0.0 <= acc.ece <= 1.0
    assert 0.0 <= acc.brier <= 1.0
    assert acc.macro_f1 is not None
    assert acc.label_latency_p50_seconds is not None
    assert acc.label_latency_p95_seconds is not None
    # latency is log-normal(7, 1): median e^7 ≈ 1097 s, p95 e^(7 + 1.645) ≈ 5700 s; √2-wide bins
    assert acc.label_latency_p50_seconds == pytest.approx(1097, rel=0.2)
    assert acc.label_latency_p95_seconds == pytest.approx(5700, rel=0.25)
    assert report.result("accuracy").severity == "page"  # 0.9 → ~0.72 is more than the 0.10 page drop
    assert report.severity == "page"
    _json(report.to_dict())


def test_too_few_labels_give_metrics_but_no_accuracy_verdict() -> None:
    window = _window(10, 1000) + _labels(11, 1000, 40, accuracy=0.5)
    report = evaluate_window(window, BASELINE, baseline_accuracy=0.9)
    assert report.accuracy is not None
    assert report.accuracy.labelled == 40
    assert report.result("accuracy").severity == "insufficient_data"


def test_without_an_evaluated_accuracy_the_accuracy_signal_says_why() -> None:
    window = _window(12, 1000) + _labels(13, 1000, 300, accuracy=0.5)
    result = evaluate_window(window, BASELINE).result("accuracy")
    assert result.severity == "insufficient_data"
    assert "manifest" in result.reasons[0]


# --- trailing reference --------------------------------------------------------------------------------------


def test_reference_verdicts_warn_but_never_page() -> None:
    # A trailing reference whose class mix differs strongly from this (baseline-like) window.
    reference = WindowCounters.merge_all(LAYOUT, [_window(20 + i, 1000, prior=[0.15, 0.15, 0.7]) for i in range(3)])
    report = evaluate_window(_window(14, 2000), BASELINE, reference=reference)
    assert report.baseline_severity == "ok"
    # Against the reference the class mix votes by chi-square alone, which can only warn (PSI is
    # still reported); before, its PSI "paged" and was capped to warn.
    assert report.result("class_mix", against="reference").severity == "warn"
    assert float(report.result("class_mix", against="reference").statistics["psi"] or 0.0) >= 0.25
    assert report.reference_severity == "warn"
    assert report.severity == "warn"  # capped: paging is driven by the baseline only
    assert report.to_dict()["reference_signals"]["class_mix"]["severity"] == "warn"


def test_reference_compares_exact_expected_and_realised_accuracy() -> None:
    reference = WindowCounters.merge_all(
        LAYOUT, [_window(30 + i, 1000) + _labels(40 + i, 1000, 200, accuracy=0.9) for i in range(3)]
    )
    window = _window(15, 1000, conf_a=3.0) + _labels(16, 1000, 300, accuracy=0.7)
    report = evaluate_window(window, BASELINE, reference=reference, baseline_accuracy=0.9)
    ref_sev = _severities(report, "reference")
    assert ref_sev["expected_accuracy"] == "warn"
    assert ref_sev["accuracy"] == "page"
    assert report.result("expected_accuracy", against="reference").statistics["reference"] == pytest.approx(
        reference.confidence_sum / reference.events
    )


def test_a_small_reference_gives_no_reference_verdicts() -> None:
    report = evaluate_window(_window(17, 2000), BASELINE, reference=_window(18, 50))
    assert set(_severities(report, "reference").values()) == {"insufficient_data"}
    assert report.severity == "ok"


def test_layout_mismatches_are_errors() -> None:
    other = CounterLayout(n_classes=3, confidence_edges=(0.0, 0.5, 1.0), feature_edges={})
    with pytest.raises(ValueError, match="confidence bins"):
        evaluate_window(WindowCounters.empty(other), BASELINE)
    with pytest.raises(ValueError, match="class names"):
        evaluate_window(_window(1, 10), BASELINE, classes=["a", "b"])


# --- manifest wiring -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"int8": {"accuracy": 0.91}, "accuracy": 0.5}, 0.91),
        ({"accuracy": 0.88}, 0.88),
        ({"int8": {"macro_f1": 0.9}}, None),
        ({"accuracy": "high"}, None),
        ({"accuracy": 1.5}, None),
        ({}, None),
    ],
)
def test_reference_accuracy_from_metrics(metrics: dict[str, object], expected: float | None) -> None:
    assert reference_accuracy_from_metrics(metrics) == expected


def test_evaluate_for_manifest_takes_everything_from_the_manifest() -> None:
    digest = "0" * 64
    manifest = Manifest.model_validate(
        {
            "name": "toy",
            "version": "1.0.0",
            "created_at": "2026-11-29T00:00:00Z",
            "model": {"file": "model.onnx", "sha256": digest, "size_bytes": 1},
            "classes": CLASSES,
            "input": {"fields": [{"name": "text"}], "normalization": "lower-collapse-whitespace-v1"},
            "thresholds": {"review_confidence": 0.6},
            "drift_baseline": BASELINE.model_dump(),
            "drift_thresholds": {"min_window_events": 500},
            "training_data": {
                "train_sha256": digest,
                "train_rows": 1,
                "eval_sha256": digest,
                "eval_rows": 1,
                "text_column": "text",
                "label_column": "label",
                "source": "test",
            },
            "metrics": {"int8": {"accuracy": 0.9}},
        }
    )
    window = _window(19, 400) + _labels(20, 400, 150, accuracy=0.6)
    report = evaluate_for_manifest(window, manifest)
    assert report.thresholds.min_window_events == 500
    assert report.result("class_mix").severity == "insufficient_data"  # 400 < 500 from the manifest
    assert report.result("accuracy").severity == "page"
    assert report.metrics.class_counts.keys() == set(CLASSES)
    overridden = evaluate_for_manifest(window, manifest, min_window_events=300)
    assert overridden.result("class_mix").severity == "ok"
