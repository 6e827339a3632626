"""The rest of the encryption: both EventBridge buses use the stack's customer-managed key, the key
policy lets EventBridge use it for exactly those buses, and the function that puts events holds
exactly kms:GenerateDataKey and kms:Decrypt on it (no wildcard actions)."""

from __future__ import annotations

from typing import Any

import pytest
from infra_helpers import Synthesized, ref_id


def _key(s: Synthesized) -> tuple[str, list[dict[str, Any]]]:
    ((lid, key),) = s.of_type("AWS::KMS::Key").items()
    return lid, key["Properties"]["KeyPolicy"]["Statement"]


def _events_statements(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [st for st in statements if st.get("Principal") == {"Service": "events.amazonaws.com"}]


def _actions(st: dict[str, Any]) -> list[str]:
    actions = st["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_every_bus_uses_the_data_key(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    key_id, _ = _key(s)
    buses = s.of_type("AWS::Events::EventBus")
    assert {b["Properties"]["Name"] for b in buses.values()} == {b.name for b in s.stack.config.topology.buses}
    for bus in buses.values():
        assert ref_id(bus["Properties"]["KmsKeyIdentifier"]) == key_id, bus["Properties"]["Name"]
    assert all(spec.kms for spec in s.stack.config.topology.buses)


def test_key_policy_lets_eventbridge_use_the_key_for_these_buses_only(default_stack: Synthesized) -> None:
    _, statements = _key(default_stack)
    events = _events_statements(statements)
    for st in events:
        assert all("*" not in a for a in _actions(st)), st  # no wildcard actions
    per_bus = {}
    for st in events:
        equals = st.get("Condition", {}).get("StringEquals", {})
        context = equals.get("kms:EncryptionContext:aws:events:event-bus:arn")
        if context is None:
            continue
        bus_name = context["Fn::Join"][1][-1].split("event-bus/")[-1]
        assert equals["aws:SourceArn"] == context, bus_name  # the same bus, by ARN
        assert "aws:SourceAccount" in equals
        per_bus[bus_name] = sorted(_actions(st))
    expected = sorted(["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"])
    assert per_bus == {"pigeonhole-input": expected, "pigeonhole-output": expected}
    # DescribeKey (metadata only) unconditioned, as EventBridge's documented key policy has it.
    validate = [st for st in events if st.get("Sid") == "EventBridgeValidatesBusKey"]
    assert [_actions(st) for st in validate] == [["kms:DescribeKey"]]
    assert "Condition" not in validate[0]


def test_the_publisher_holds_exactly_what_putevents_on_an_encrypted_bus_needs(default_stack: Synthesized) -> None:
    key_id, _ = _key(default_stack)
    names = default_stack.stack.config.names
    role_of = {
        r["Properties"]["FunctionName"]: ref_id(r["Properties"]["Role"])
        for r in default_stack.of_type("AWS::Lambda::Function").values()
    }
    kms_actions: dict[str, set[str]] = {}
    for policy in default_stack.of_type("AWS::IAM::Policy").values():
        roles = {ref_id(r) for r in policy["Properties"]["Roles"]}
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = [a for a in _actions(st) if a.startswith("kms:")]
            if not actions:
                continue
            assert all("*" not in a for a in actions), st  # no wildcard key actions on any role
            assert ref_id(st["Resource"]) == key_id, st  # the data key, by ARN
            for role in roles:
                kms_actions.setdefault(str(role), set()).update(actions)
    classifier = kms_actions[str(role_of[names.classifier_function])]
    assert {"kms:GenerateDataKey", "kms:Decrypt"} <= classifier
