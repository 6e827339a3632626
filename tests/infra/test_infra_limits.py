"""Limits stated and set: every event source mapping has a concurrency cap, the companions' reserved
concurrency caps them so they cannot starve the classifier, and the classifier's own reservation
covers its mapping and its warm capacity."""

from __future__ import annotations

from typing import Any

import pytest
from infra_helpers import Synthesized, ref_id

from pigeonhole_infra.config import MAX_RESERVED_TOTAL, ConfigError, InfraConfig


def _functions(s: Synthesized) -> dict[str, dict[str, Any]]:
    """Function name -> properties, plus its logical id under `_id`."""
    return {
        r["Properties"]["FunctionName"]: {**r["Properties"], "_id": lid}
        for lid, r in s.of_type("AWS::Lambda::Function").items()
    }


def _mapping_caps(s: Synthesized) -> dict[str, int]:
    """Queue name -> the MaximumConcurrency of the SQS mapping that reads it."""
    queues = {lid: r["Properties"]["QueueName"] for lid, r in s.of_type("AWS::SQS::Queue").items()}
    return {
        queues[str(ref_id(m["Properties"]["EventSourceArn"]))]: m["Properties"]["ScalingConfig"]["MaximumConcurrency"]
        for m in s.of_type("AWS::Lambda::EventSourceMapping").values()
    }


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_every_mapping_is_capped_and_every_function_reserved(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    config: InfraConfig = s.stack.config
    names = config.names
    by_queue = _mapping_caps(s)
    assert by_queue == {names.ingest_queue: config.max_concurrency, names.feedback_queue: 2}
    caps = {
        names.classifier_function: by_queue[names.ingest_queue],
        names.feedback_function: by_queue[names.feedback_queue],
    }
    functions = _functions(s)
    reserved = {name: p["ReservedConcurrentExecutions"] for name, p in functions.items()}
    assert set(reserved) == {
        names.classifier_function,
        names.drift_function,
        names.feedback_function,
        names.golden_hook_function,
    }
    assert reserved[names.golden_hook_function] == 1  # the pre-traffic hook: one deployment at a time
    # The companions are capped: together they can never take more than a few executions.
    assert reserved[names.drift_function] == 2
    assert reserved[names.feedback_function] == caps[names.feedback_function]  # below it the mapping throttles
    # The classifier's reservation covers every batch its mapping may run and all of its warm capacity.
    assert reserved[names.classifier_function] >= caps[names.classifier_function]
    for target in s.of_type("AWS::ApplicationAutoScaling::ScalableTarget").values():
        assert reserved[names.classifier_function] >= target["Properties"]["MaxCapacity"]
    assert sum(reserved.values()) == config.reserved_total <= MAX_RESERVED_TOTAL


def test_default_arithmetic() -> None:
    config = InfraConfig()
    assert (config.max_concurrency, config.provisioned_max) == (20, 20)
    assert config.classifier_reserved == 25  # max(20, 20) + 5 headroom
    assert config.reserved_total == 25 + 2 + 2 + 1  # + the pre-traffic hook
    # SnapStart has no provisioned concurrency: the mapping's cap decides.
    assert InfraConfig(warm_mode="snapstart", max_concurrency=50).classifier_reserved == 55


def test_a_reservation_below_the_mapping_or_warm_capacity_is_refused() -> None:
    with pytest.raises(ConfigError, match="classifier_reserved_concurrency"):
        InfraConfig(classifier_reserved_concurrency=10)  # below max_concurrency = provisioned_max = 20
    with pytest.raises(ConfigError, match=r"reserved concurrency: \d+ in total exceeds 900"):
        InfraConfig(max_concurrency=1000, provisioned_max=20)
    with pytest.raises(ConfigError, match="feedback_max_concurrency"):
        InfraConfig(feedback_max_concurrency=1)
