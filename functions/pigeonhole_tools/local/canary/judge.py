"""What decides a local canary: the pre-traffic golden check, then the rollback alarms of one version.

Rollback alarms: every definition of `pigeonhole.alarms` marked ``rollback``, judged for one version
only. Our own metrics already carry ``ModelVersion`` (bound to that version's manifest version); the
Lambda alias metrics (``FunctionName, Resource``) are narrowed to the version by adding Lambda's
``ExecutedVersion`` dimension, which Lambda publishes for every alias invocation. So a candidate at
10 % of the traffic is judged on its own invocations, not diluted by the current version's.

The golden check replays the candidate's golden set (`pigeonhole.model.golden`, shipped in the model
package) through the candidate's loaded runtime and refuses it below the accuracy bar: max of its
manifest's ``min_accuracy`` and the deployer's floor (default `DEFAULT_GOLDEN_FLOOR`, the stack's
``min_golden_accuracy``), so a broken build cannot lower the bar through its own manifest. A candidate
without a golden set is refused, as the deployed hook refuses it.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pigeonhole import alarms as defs
from pigeonhole import constants as c
from pigeonhole.naming import ResourceNames
from pigeonhole_tools.local import alarms as la
from pigeonhole_tools.local.canary.versions import ClassifierVersion

EXECUTED_VERSION = "ExecutedVersion"
GOLDEN_MODULE = "pigeonhole.model.golden"
DEFAULT_GOLDEN_FLOOR = c.DEFAULT_MIN_GOLDEN_ACCURACY  # infra's InfraConfig.min_golden_accuracy


def for_version(query: defs.MetricQuery, executed_version: str) -> defs.MetricQuery:
    """The query narrowed to one Lambda version: alias metrics gain ``ExecutedVersion`` (others unchanged)."""
    names = [name for name, _ in query.dimensions]
    if query.namespace != defs.NS_LAMBDA or "Resource" not in names or EXECUTED_VERSION in names:
        return query
    # Appended last: Lambda's (and the local service metrics') order is FunctionName, Resource, ExecutedVersion.
    return dataclasses.replace(query, dimensions=(*query.dimensions, (EXECUTED_VERSION, executed_version)))


def version_alarm(alarm: defs.AlarmDef, executed_version: str) -> defs.AlarmDef:
    """The same alarm (name, threshold, periods) judging one version."""
    if alarm.metric is not None:
        return dataclasses.replace(alarm, metric=for_version(alarm.metric, executed_version))
    return dataclasses.replace(alarm, metrics=tuple((i, for_version(q, executed_version)) for i, q in alarm.metrics))


def rollback_alarms(executed_version: str) -> tuple[defs.AlarmDef, ...]:
    """Every alarm a canary deployment rolls back on, for one version."""
    return tuple(
        version_alarm(a, executed_version) for a in defs.applicable(provisioned_concurrency=True) if a.rollback
    )


def version_evaluator(
    source: la.MetricSource, version: ClassifierVersion, names: ResourceNames, window_seconds: int
) -> la.LocalAlarms:
    """An evaluator of one version's rollback alarms (no notifier: CodeDeploy reads the state, nobody is paged)."""
    bindings = dict(la.local_bindings(names, version.model_version))
    # Where the definitions bind ExecutedVersion / FunctionVersion themselves (the canary's own alarms), it is
    # this version's number; `for_version` covers definitions that only know the alias.
    function_version = getattr(defs.Binding, "CLASSIFIER_VERSION", None)
    if function_version is not None:
        bindings[function_version] = version.executed_version
    return la.LocalAlarms(
        source,
        bindings,
        prefix=names.prefix,
        window_seconds=window_seconds,
        alarms=rollback_alarms(version.executed_version),
        composites=(),
        not_evaluated={},
    )


def firing(results: Sequence[la.AlarmResult]) -> list[la.AlarmResult]:
    return [r for r in results if r.state == la.State.ALARM]


# -- pre-traffic ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreTraffic:
    """The golden check's outcome; ``ran`` is False when it could not run (and says why in ``note``)."""

    ran: bool
    passed: bool
    note: str
    verdict: Mapping[str, Any] | None = None


def golden_module() -> Any | None:
    """The golden-set module if this checkout has it (it ships with the pre-traffic hook)."""
    try:
        return importlib.import_module(GOLDEN_MODULE)
    except ImportError:
        return None


def pre_traffic(candidate: ClassifierVersion, floor: float) -> PreTraffic:
    """Replay the candidate's golden set through its runtime; refuse it below the bar or without a set."""
    golden = golden_module()
    if golden is None:
        return PreTraffic(False, True, f"skipped: {GOLDEN_MODULE} is not in this checkout")
    manifest = candidate.service.runtime.manifest
    try:
        golden_set = golden.load_golden(candidate.model_dir, manifest)
    except Exception as exc:
        return PreTraffic(True, False, f"no usable golden set: {exc}")
    verdict = golden.evaluate_golden(golden_set, golden.runtime_classifier(candidate.service.runtime), floor)
    summary = (
        f"golden set {verdict.n_events} events: accuracy {verdict.accuracy:.4f} (bar {verdict.min_accuracy:.4f}), "
        f"agreement with the build {verdict.agreement:.4f} (bar {verdict.min_agreement:.4f})"
    )
    if not verdict.passed:
        summary += ": " + "; ".join(verdict.reasons)
    return PreTraffic(True, bool(verdict.passed), summary, verdict.to_dict())
