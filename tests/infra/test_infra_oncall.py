"""Someone is paged: a stack without an on-call endpoint does not synthesize unless the config says
explicitly that it pages nobody (`oncall: none`, a sandbox)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from infra_helpers import SKIP_BUNDLING, Synthesized, ref_id, synthesize

from pigeonhole_infra.config import ConfigError, InfraConfig


def _oncall_topic_id(s: Synthesized) -> str:
    topics = s.of_type("AWS::SNS::Topic")
    return next(k for k, v in topics.items() if v["Properties"]["TopicName"].endswith("-oncall"))


def _subscriptions(s: Synthesized) -> list[dict[str, Any]]:
    return [r["Properties"] for r in s.of_type("AWS::SNS::Subscription").values()]


def test_the_rule_on_the_config_value() -> None:
    with pytest.raises(ConfigError, match="no on-call endpoint"):
        InfraConfig().require_oncall()
    InfraConfig(oncall="none").require_oncall()  # said explicitly: fine
    InfraConfig(oncall_email="a@example.org").require_oncall()
    InfraConfig(oncall_https_url="https://pager.example.org/x").require_oncall()
    # An endpoint given beside `none` is still subscribed: `none` waives the requirement, nothing more.
    assert InfraConfig(oncall="none", oncall_email="a@example.org").oncall_endpoints == ("a@example.org",)
    with pytest.raises(ConfigError, match="oncall: one of"):
        InfraConfig.from_mapping({"oncall": "nobody"})
    # From the command line the string "none" stays "none" (it is not read as "unset").
    assert InfraConfig.from_context({"pigeonhole:oncall": "none"}).oncall == "none"


def test_no_endpoint_fails_synthesis_with_a_clear_message(fake_model_dir: Path, tmp_path: Path) -> None:
    from app import build_app

    # The repository's cdk.json (`oncall: required`, no endpoint) as a bare `cdk deploy` would read it.
    with pytest.raises(ConfigError) as caught:
        build_app(context={"pigeonhole:model_dir": str(fake_model_dir), **SKIP_BUNDLING}, outdir=str(tmp_path))
    message = str(caught.value)
    assert "no on-call endpoint" in message
    for hint in ("oncall_email", "oncall_https_url", "oncall=none", "docs/deploy.md"):
        assert hint in message
    # A config object of its own without an endpoint: the same.
    with pytest.raises(ConfigError, match="no on-call endpoint"):
        build_app(context={"pigeonhole": {"model_dir": str(fake_model_dir)}, **SKIP_BUNDLING}, outdir=str(tmp_path))


def test_oncall_none_synthesizes_a_stack_with_no_subscription(fake_model_dir: Path, tmp_path: Path) -> None:
    s = synthesize(tmp_path, {"oncall": "none", "model_dir": str(fake_model_dir)})
    assert _subscriptions(s) == []
    assert _oncall_topic_id(s)  # the topic (and the alarms' actions on it) still exist: subscribe later


def test_email_and_https_endpoints_subscribe_to_the_oncall_topic(
    default_stack: Synthesized, alternate_stack: Synthesized
) -> None:
    for s, protocol, endpoint in (
        (default_stack, "email", "oncall@example.com"),
        (alternate_stack, "https", "https://pager.example.com/hook"),
    ):
        subs = _subscriptions(s)
        assert [(p["Protocol"], p["Endpoint"]) for p in subs] == [(protocol, endpoint)]
        assert ref_id(subs[0]["TopicArn"]) == _oncall_topic_id(s)
