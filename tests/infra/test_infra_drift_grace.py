"""Drift waits until an ingest retry can have landed: its grace, from the synthesized template, covers
the ingest queue's visibility timeout, the batching window and one classifier invocation."""

from __future__ import annotations

from typing import Any

import pytest
from infra_helpers import Synthesized

from pigeonhole import constants as c


def _refs(value: Any) -> set[str]:
    """Every logical id referenced inside an intrinsic (Ref, GetAtt, nested in Join/Split)."""
    if isinstance(value, dict):
        found = {str(value["Ref"])} if "Ref" in value else set()
        if "Fn::GetAtt" in value:
            found.add(str(value["Fn::GetAtt"][0]))
        return found.union(*(_refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value))
    return set()


def _target(s: Synthesized, value: Any) -> dict[str, Any]:
    (logical_id,) = _refs(value)
    return s.resources[logical_id]


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_drift_grace_covers_an_ingest_retry(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    drift = next(
        r["Properties"]
        for r in s.of_type("AWS::Lambda::Function").values()
        if r["Properties"]["Environment"]["Variables"].get("POWERTOOLS_SERVICE_NAME") == "drift"
    )
    grace = int(drift["Environment"]["Variables"][c.ENV_DRIFT_GRACE_SECONDS])
    checked = 0
    for mapping in s.of_type("AWS::Lambda::EventSourceMapping").values():
        props = mapping["Properties"]
        target = _target(s, props["FunctionName"])
        if target["Type"] != "AWS::Lambda::Alias":
            continue  # the feedback mapping; only the classifier's (on the alias) feeds the windows
        classifier = _target(s, target["Properties"]["FunctionName"])["Properties"]
        queue = _target(s, props["EventSourceArn"])["Properties"]
        window = props.get("MaximumBatchingWindowInSeconds", 0)
        assert grace >= queue["VisibilityTimeout"] + window, "drift would judge before an ingest retry lands"
        assert grace == queue["VisibilityTimeout"] + window + classifier["Timeout"]
        checked += 1
    assert checked == 1
