"""The stack passes one capture policy to every function and the per-label-metrics option to the
classifier; the dashboard graphs per-label metrics only when they exist."""

from __future__ import annotations

import json

import pytest
from infra_helpers import Synthesized

from pigeonhole import constants as c
from pigeonhole import metrics_catalog as mc


def _environments(s: Synthesized) -> dict[str, dict[str, str]]:
    return {
        r["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]: r["Properties"]["Environment"][
            "Variables"
        ]
        for r in s.of_type("AWS::Lambda::Function").values()
        if "POWERTOOLS_SERVICE_NAME" in r["Properties"].get("Environment", {}).get("Variables", {})
    }


@pytest.mark.parametrize(
    ("which", "review", "auto", "per_label"),
    [("default_stack", "1.0", "0.1", "false"), ("alternate_stack", "0.8", "0.05", "true")],
)
def test_every_function_gets_the_same_capture_policy(
    which: str, review: str, auto: str, per_label: str, request: pytest.FixtureRequest
) -> None:
    s: Synthesized = request.getfixturevalue(which)
    envs = _environments(s)
    # The three functions that read or write windows; others (the golden pre-traffic hook) capture nothing.
    window_functions = {mc.SERVICE_CLASSIFIER, mc.SERVICE_DRIFT, mc.SERVICE_FEEDBACK}
    assert window_functions <= set(envs)
    for service, env in envs.items():
        if service not in window_functions and c.ENV_CAPTURE_REVIEW_RATE not in env:
            continue
        assert (env[c.ENV_CAPTURE_REVIEW_RATE], env[c.ENV_CAPTURE_AUTO_RATE]) == (review, auto), service
        assert c.ENV_CAPTURE_RATE not in env  # retired: the functions refuse it
    assert envs[mc.SERVICE_CLASSIFIER][c.ENV_PER_LABEL_METRICS] == per_label


@pytest.mark.parametrize(("which", "per_label"), [("default_stack", False), ("alternate_stack", True)])
def test_the_dashboard_graphs_per_label_metrics_only_when_they_are_emitted(
    which: str, per_label: bool, request: pytest.FixtureRequest
) -> None:
    s: Synthesized = request.getfixturevalue(which)
    (dashboard,) = s.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert (mc.CLASS_PREDICTED.name in body) is per_label
    assert ("Class mix drift per window" in body) is not per_label
    # The accuracy graph weighs labels by their capture weight (the SLO alarms do too).
    assert mc.LABELLED_WEIGHT.name in body
    assert mc.MISCLASSIFIED_WEIGHT.name in body
