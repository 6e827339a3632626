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

Modules, in the order a run uses them: :mod:`.config` (the run's settings and the simulated shifts),
:mod:`.pools` (texts and cached predictions), :mod:`.models` (the shipped and the held-out package),
:mod:`.scenarios`, :mod:`.simulation` (one stream through moto), :mod:`.analysis` (false alarms, delays,
the re-judging sweep, the candidate detector), :mod:`.monte_carlo` (counters-only stationary windows),
:mod:`.run` (``run_harness``, the JSON result) and :mod:`.report` (Markdown and terminal tables).
"""

from __future__ import annotations

from pigeonhole_tools.monitoring.harness.analysis import (
    Detection,
    FalseAlarms,
    Verdicts,
    candidate_verdicts,
    detection,
    false_alarms,
    mean_window_psi,
    merged_stationary,
    population_psi,
    precision_alarm,
    recorded_verdicts,
    rejudge,
    severity_rank,
    shift_psi,
    trigger_counts,
    wilson,
)
from pigeonhole_tools.monitoring.harness.config import (
    CONCEPT_FLIPS,
    HELDOUT_INTENTS,
    SURGE_INTENTS,
    T0,
    HarnessConfig,
    Mode,
    ModelKey,
    with_overrides,
)
from pigeonhole_tools.monitoring.harness.models import LoadedModel, heldout_model, load_model
from pigeonhole_tools.monitoring.harness.monte_carlo import MONTE_CARLO_SETTINGS, counters_monte_carlo
from pigeonhole_tools.monitoring.harness.pools import Pool, build_pools, classify_pool, read_csv
from pigeonhole_tools.monitoring.harness.run import SWEEPS, HarnessResult, run_harness
from pigeonhole_tools.monitoring.harness.scenarios import Component, Scenario
from pigeonhole_tools.monitoring.harness.simulation import RunResult, Simulator, WindowObservation

__all__ = [
    "CONCEPT_FLIPS",
    "HELDOUT_INTENTS",
    "MONTE_CARLO_SETTINGS",
    "SURGE_INTENTS",
    "SWEEPS",
    "T0",
    "Component",
    "Detection",
    "FalseAlarms",
    "HarnessConfig",
    "HarnessResult",
    "LoadedModel",
    "Mode",
    "ModelKey",
    "Pool",
    "RunResult",
    "Scenario",
    "Simulator",
    "Verdicts",
    "WindowObservation",
    "build_pools",
    "candidate_verdicts",
    "classify_pool",
    "counters_monte_carlo",
    "detection",
    "false_alarms",
    "heldout_model",
    "load_model",
    "mean_window_psi",
    "merged_stationary",
    "population_psi",
    "precision_alarm",
    "read_csv",
    "recorded_verdicts",
    "rejudge",
    "run_harness",
    "severity_rank",
    "shift_psi",
    "trigger_counts",
    "wilson",
    "with_overrides",
]
