"""The deploy rehearsal's template rewrites on a small hand-written template (no CDK, no moto server)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pigeonhole_tools.local.rehearsal.template import (
    MOTO_VERSION,
    REWRITES,
    SKIPPED_TYPES,
    MotoVersionError,
    adjust,
    check_moto_version,
    skipped_resources,
)


def tiny_template() -> dict[str, Any]:
    """One of everything a rewrite touches, in the shapes CDK synthesizes."""
    return {
        "Resources": {
            "Key": {
                "Type": "AWS::KMS::Key",
                "Properties": {"KeyPolicy": {"Statement": []}, "Tags": [{"Key": "project", "Value": "p"}]},
            },
            "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "p-output"}},
            "Rule": {"Type": "AWS::Events::Rule", "Properties": {"EventBusName": {"Ref": "Bus"}}},
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Layers": [{"Ref": "Layer"}],
                    "Environment": {"Variables": {"BUS": {"Ref": "Bus"}}},
                },
            },
            "Alias": {"Type": "AWS::Lambda::Alias", "Properties": {"FunctionName": {"Ref": "Fn"}, "Name": "live"}},
            "Mapping": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "BatchSize": 10,
                    "FunctionName": {"Fn::Join": ["", [{"Fn::Select": [6, {"Fn::Split": [":", {"Ref": "Alias"}]}]}]]},
                },
            },
            "Version": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "Fn"}}},
            "HookPolicy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {"PolicyDocument": {"Statement": [{"Resource": {"Ref": "Version"}}]}},
            },
            "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"AlarmName": "a"}},
            "Dashboard": {
                "Type": "AWS::CloudWatch::Dashboard",
                "Properties": {"DashboardBody": {"Fn::Join": ["", [{"Fn::GetAtt": ["Alarm", "Arn"]}]]}},
            },
        }
    }


def test_every_rewrite_applies_once_to_the_tiny_template() -> None:
    adjusted, counts = adjust(tiny_template())
    assert counts == {
        "kms-key-tags": 1,
        "kms-key-policy-as-json-string": 1,
        "event-bus-ref-to-name": 2,
        "event-source-mapping-on-function": 1,
        "disable-event-source-mappings": 1,
        "getatt-on-skipped-types": 1,
        "version-ref-to-arn": 1,
        "function-layers-dropped": 1,
    }
    resources = adjusted["Resources"]
    assert resources["Key"]["Properties"]["Tags"] == [{"TagKey": "project", "TagValue": "p"}]
    assert resources["Key"]["Properties"]["KeyPolicy"] == {"Fn::ToJsonString": {"Statement": []}}
    assert resources["Rule"]["Properties"]["EventBusName"] == "p-output"
    assert resources["Fn"]["Properties"]["Environment"]["Variables"]["BUS"] == "p-output"
    assert "Layers" not in resources["Fn"]["Properties"]
    mapping = resources["Mapping"]["Properties"]
    assert mapping == {"BatchSize": 10, "FunctionName": {"Ref": "Fn"}, "Enabled": False}
    body = json.dumps(resources["Dashboard"]["Properties"]["DashboardBody"])
    assert "Fn::GetAtt" not in body
    hook_resource = resources["HookPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Resource"]
    assert hook_resource == {"Fn::Join": ["", [{"Fn::GetAtt": ["Fn", "Arn"]}, ":moto-version"]]}
    assert "arn:${AWS::Partition}:cloudwatch:" in body


def test_adjust_leaves_the_original_alone_and_is_idempotent() -> None:
    original = tiny_template()
    adjusted, _ = adjust(original)
    assert original == tiny_template()
    again, counts = adjust(adjusted)
    assert again == adjusted
    assert set(counts.values()) == {0}


def test_rewrites_have_unique_names_and_a_reason() -> None:
    assert len({r.name for r in REWRITES}) == len(REWRITES)
    assert all(len(r.why) > 40 for r in REWRITES)


def test_skipped_resources_are_listed_by_logical_id() -> None:
    assert skipped_resources(tiny_template()) == {"Alias": "AWS::Lambda::Alias", "Alarm": "AWS::CloudWatch::Alarm"}
    assert "AWS::SQS::Queue" not in SKIPPED_TYPES


def test_a_different_moto_is_refused_with_what_to_do() -> None:
    check_moto_version(MOTO_VERSION)
    with pytest.raises(MotoVersionError, match=r"written for moto 5\.2\.5, but moto 5\.3\.0 is installed") as info:
        check_moto_version("5.3.0")
    assert "update MOTO_VERSION" in str(info.value)
