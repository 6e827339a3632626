"""The prediction-capture policy: deterministic per event id and route, rates as configured, weights 1/p."""

from __future__ import annotations

import math

import pytest

from pigeonhole import constants as c
from pigeonhole.capture import CapturePolicy, sampled
from pigeonhole.config import capture_policy
from pigeonhole.exceptions import ConfigurationError

IDS = [f"evt-{i:06d}" for i in range(20_000)]


def test_the_default_captures_every_review_routed_event_and_a_tenth_of_the_auto_routed() -> None:
    policy = CapturePolicy()
    assert (policy.review_rate, policy.auto_rate) == (1.0, 0.1)
    assert all(policy.weight(i, "review") == 1.0 for i in IDS[:1000])


def test_the_decision_is_a_pure_function_of_id_and_route() -> None:
    """A redelivery, a duplicate or another container makes the same decision."""
    a, b = CapturePolicy(review_rate=0.5, auto_rate=0.1), CapturePolicy(review_rate=0.5, auto_rate=0.1)
    first = [a.weight(i, "auto") for i in IDS[:2000]]
    assert first == [b.weight(i, "auto") for i in IDS[:2000]] == [a.weight(i, "auto") for i in IDS[:2000]]
    assert {w for w in first} == {None, 10.0}
    # Lowering a rate only drops captures: what 10 % keeps, 30 % keeps too (nested samples).
    wider = CapturePolicy(review_rate=1.0, auto_rate=0.3)
    assert all(wider.weight(i, "auto") is not None for i, w in zip(IDS[:2000], first, strict=True) if w is not None)


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.25, 0.5, 0.9])
def test_the_captured_share_is_the_rate_within_binomial_tolerance(rate: float) -> None:
    policy = CapturePolicy(review_rate=rate, auto_rate=rate)
    for route in ("auto", "review"):
        share = sum(policy.weight(i, route) is not None for i in IDS) / len(IDS)
        sigma = math.sqrt(rate * (1 - rate) / len(IDS))
        assert abs(share - rate) < 4.5 * sigma, (route, share)


def test_weights_are_the_inverse_rate_and_rate_zero_captures_nothing() -> None:
    policy = CapturePolicy(review_rate=0.25, auto_rate=0.0)
    weights = {policy.weight(i, "review") for i in IDS[:400]}
    assert weights == {None, 4.0}
    assert all(policy.weight(i, "auto") is None for i in IDS[:400])
    assert policy.expected_share(0.2) == pytest.approx(0.2 * 0.25)
    assert sampled("x", 1.0)
    assert not sampled("x", 0.0)


def test_invalid_rates_and_routes_are_refused() -> None:
    with pytest.raises(ValueError, match="auto_rate"):
        CapturePolicy(auto_rate=1.5)
    with pytest.raises(ValueError, match="review_rate"):
        CapturePolicy(review_rate=-0.1)
    with pytest.raises(ValueError, match="route"):
        CapturePolicy().weight("x", "quarantined")


def test_the_environment_round_trips_through_the_settings_parser() -> None:
    policy = CapturePolicy(review_rate=0.8, auto_rate=0.05)
    env = dict(policy.to_env(c.ENV_CAPTURE_REVIEW_RATE, c.ENV_CAPTURE_AUTO_RATE))
    assert capture_policy(env) == policy
    assert capture_policy({}) == CapturePolicy()
    with pytest.raises(ConfigurationError, match=c.ENV_CAPTURE_REVIEW_RATE):
        capture_policy({c.ENV_CAPTURE_REVIEW_RATE: "often"})
    with pytest.raises(ConfigurationError, match="replaced"):
        capture_policy({c.ENV_CAPTURE_RATE: "1.0"})


def test_what_a_missing_capture_can_mean_follows_from_the_id_alone() -> None:
    """Without a per-event marker, feedback learns from the id whether a capture can exist at all."""
    policy = CapturePolicy(review_rate=0.5, auto_rate=0.1)
    for i in IDS[:3000]:
        captured = {policy.weight(i, r) is not None for r in ("auto", "review")}
        assert policy.may_capture(i) == (True in captured)
        assert policy.always_captures(i) == (captured == {True})
    default = CapturePolicy()
    assert all(default.may_capture(i) for i in IDS[:100])  # review-routed events are always captured
