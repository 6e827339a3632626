"""Contract: every alarm watches a metric (name, namespace, dimensions) that the code really emits,
and `pigeonhole.alarms` is the only place alarms are defined (infra and the local runtime read it)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from infra_helpers import REPO_ROOT

from pigeonhole import alarms as defs
from pigeonhole import constants as c
from pigeonhole import metrics_catalog as mc
from pigeonhole_infra import config as infra_config
from pigeonhole_infra.constructs.alerting import bindings_for

FUNCTIONS = REPO_ROOT / "functions"
PACKAGE = FUNCTIONS / "pigeonhole"
# Where each service's metrics are emitted from.
SERVICE_PACKAGES = {
    mc.SERVICE_CLASSIFIER: PACKAGE / "classify",
    mc.SERVICE_DRIFT: PACKAGE / "drift",
    mc.SERVICE_FEEDBACK: PACKAGE / "feedback",
}
CATALOG_NAMES = {name for name, value in vars(mc).items() if isinstance(value, mc.MetricDef)}

_EXECUTED = ("FunctionName", "Resource", "ExecutedVersion")
# AWS metrics the alarms may watch, with the dimension sets AWS publishes them under.
AWS_METRICS: dict[tuple[str, str], set[tuple[str, ...]]] = {
    (defs.NS_SQS, "ApproximateNumberOfMessagesVisible"): {("QueueName",)},
    (defs.NS_SQS, "ApproximateAgeOfOldestMessage"): {("QueueName",)},
    (defs.NS_SQS, "NumberOfMessagesSent"): {("QueueName",)},
    # RuleName alone: a rule on the default bus; EventBusName + RuleName: a rule on a custom bus.
    (defs.NS_EVENTS, "FailedInvocations"): {("RuleName",), ("EventBusName", "RuleName")},
    # FunctionName + Resource + ExecutedVersion: an alias invocation, by the version that ran it (the
    # canary alarms; Lambda's monitoring docs list these dimensions for alias invocations).
    (defs.NS_LAMBDA, "Errors"): {("FunctionName",), ("FunctionName", "Resource"), _EXECUTED},
    (defs.NS_LAMBDA, "Invocations"): {("FunctionName",), ("FunctionName", "Resource"), _EXECUTED},
    # aws-cdk-lib's generated DynamoDB canned metrics (dynamodb-canned-metrics.generated.d.ts)
    (defs.NS_DYNAMODB, "WriteThrottleEvents"): {("TableName",), ("GlobalSecondaryIndexName", "TableName")},
    (defs.NS_DYNAMODB, "ReadThrottleEvents"): {("TableName",), ("GlobalSecondaryIndexName", "TableName")},
    (defs.NS_DYNAMODB, "TransactionConflict"): {("TableName",)},
    (defs.NS_LAMBDA, "Throttles"): {("FunctionName",), ("FunctionName", "Resource")},
    (defs.NS_LAMBDA, "Duration"): {("FunctionName",), ("FunctionName", "Resource"), _EXECUTED},
    (defs.NS_LAMBDA, "ProvisionedConcurrencySpilloverInvocations"): {("FunctionName", "Resource")},
}


def _python_files(root: Path) -> Iterator[Path]:
    yield from sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _catalog_references(path: Path) -> set[str]:
    """Names of catalog MetricDefs a module uses: `mc.X` (any alias of the catalog module) or `from ... import X`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases: set[str] = set()
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "pigeonhole":
            aliases |= {a.asname or a.name for a in node.names if a.name == "metrics_catalog"}
        elif isinstance(node, ast.ImportFrom) and node.module == "pigeonhole.metrics_catalog":
            imported |= {a.asname or a.name for a in node.names if a.name in CATALOG_NAMES}
        elif isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "pigeonhole.metrics_catalog"}
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in CATALOG_NAMES:
            base = node.value
            dotted = base.id if isinstance(base, ast.Name) else ast.unparse(base)
            if dotted in aliases:
                used.add(node.attr)
        elif isinstance(node, ast.Name) and node.id in imported:
            used.add(node.id)
    return used


def _emitted_by(service: str) -> set[str]:
    root = SERVICE_PACKAGES[service]
    if not root.is_dir():
        pytest.skip(f"{root.relative_to(REPO_ROOT)} is not written yet: nothing to check for service {service!r}")
    used: set[str] = set()
    for path in _python_files(root):
        used |= _catalog_references(path)
    return used


def _catalog_name(metric: mc.MetricDef) -> str:
    return next(name for name in CATALOG_NAMES if getattr(mc, name) is metric)


def _all_queries() -> list[tuple[str, defs.MetricQuery]]:
    return [(a.suffix, q) for a in defs.ALARMS for q in a.queries()]


@pytest.mark.parametrize(("suffix", "query"), _all_queries(), ids=lambda v: v if isinstance(v, str) else v.name)
def test_alarm_metric_matches_what_is_published(suffix: str, query: defs.MetricQuery) -> None:
    dims = tuple(name for name, _ in query.dimensions)
    if query.namespace == mc.NAMESPACE:
        assert query.catalog is not None, f"{suffix}: our namespace, but not from the catalog"
        assert query.catalog in mc.ALL_METRICS
        assert query.name == query.catalog.name
        assert set(dims) == set(query.catalog.dimensions), f"{suffix}: dimensions differ from what is emitted"
        values = dict(query.dimensions)
        assert values[mc.DIM_SERVICE] == query.catalog.service, f"{suffix}: wrong service dimension"
        if mc.DIM_MODEL_VERSION in values:
            assert values[mc.DIM_MODEL_VERSION] is defs.Binding.MODEL_VERSION
    else:
        assert (query.namespace, query.name) in AWS_METRICS, f"{suffix}: unknown AWS metric {query.name}"
        assert dims in AWS_METRICS[(query.namespace, query.name)], f"{suffix}: AWS does not publish {dims}"


@pytest.mark.parametrize("service", sorted(SERVICE_PACKAGES))
def test_every_catalog_metric_of_a_service_is_emitted_by_its_code(service: str) -> None:
    """The catalog is not a wish list: each of a service's metrics is referenced by that service's code."""
    emitted = _emitted_by(service)
    declared = {_catalog_name(m) for m in mc.ALL_METRICS if m.service == service}
    missing = declared - emitted
    assert not missing, f"{service}: catalog metrics nobody emits: {sorted(missing)}"


def test_every_alarmed_metric_is_emitted() -> None:
    for suffix, query in _all_queries():
        if query.catalog is not None and SERVICE_PACKAGES[query.catalog.service].is_dir():
            assert _catalog_name(query.catalog) in _emitted_by(query.catalog.service), suffix


def test_functions_emit_with_the_catalog_service_and_namespace() -> None:
    """Powertools adds `service`: the emitting code and the Lambda environment must name the catalog's service."""
    for service, root in SERVICE_PACKAGES.items():
        if not root.is_dir():
            continue
        source = "\n".join(p.read_text(encoding="utf-8") for p in _python_files(root))
        constant = next(n for n, v in vars(mc).items() if n.startswith("SERVICE_") and v == service)
        assert f"mc.{constant}" in source, f"{service}: its code never names mc.{constant}"
        assert "mc.NAMESPACE" in source, f"{service}: its code does not emit into the catalog namespace"


def test_every_binding_resolves_for_a_deployment() -> None:
    config = infra_config.InfraConfig()
    bindings = bindings_for(config, "1.0.0", "7")
    for alarm in defs.ALARMS:
        for query in alarm.queries():
            resolved = query.resolve(bindings)
            assert all(resolved.values()), alarm.suffix
    # Names the local runtime already shares agree with infra's.
    names = config.names
    assert bindings[defs.Binding.INGEST_QUEUE] == names.ingest_queue
    assert bindings[defs.Binding.INGEST_DLQ] == names.ingest_dlq


def test_alarms_are_defined_only_in_pigeonhole_alarms() -> None:
    """No other module (functions, tools, infra) builds alarm definitions or hard-codes an alarm's threshold."""
    offenders = []
    roots = [FUNCTIONS, REPO_ROOT / "infra" / "pigeonhole_infra"]
    for root in roots:
        for path in _python_files(root):
            if path == PACKAGE / "alarms.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    func = ast.unparse(node.func)
                    if func.split(".")[-1] in {"AlarmDef", "CompositeAlarmDef"}:
                        offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} builds {func}")
                    if func.split(".")[-1] in {"put_metric_alarm", "Alarm"} and any(
                        kw.arg in {"Threshold", "threshold"} and isinstance(kw.value, ast.Constant)
                        for kw in node.keywords
                    ):
                        offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} hard-codes a threshold")
    assert not offenders, offenders


def test_local_alarm_code_reads_the_shared_definitions() -> None:
    """Any local-runtime module that evaluates alarms must take them from pigeonhole.alarms."""
    local = FUNCTIONS / "pigeonhole_tools"
    checked = 0
    for path in _python_files(local):
        source = path.read_text(encoding="utf-8")
        if "AlarmDef" in source or "evaluate_alarm" in source or "ALARMS" in source:
            assert "pigeonhole.alarms" in source or "from pigeonhole import alarms" in source, path
            checked += 1
    if not checked:
        pytest.skip("the local alarm evaluator is not written yet")


def test_env_names_assumed_by_infra_match_constants() -> None:
    """infra/config.py carries env names constants.py lacked at the time; once constants defines them, they agree."""
    for name in ("ENV_WINDOWS_TABLE", "ENV_PREDICTIONS_TABLE", "ENV_FEEDBACK_TABLE"):
        if hasattr(c, name):
            assert getattr(c, name) == getattr(infra_config, name), name
