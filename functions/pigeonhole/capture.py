"""The prediction-capture policy: which classified events keep their prediction for a later label join.

Why a policy and not one flat rate: labels come mostly from the review queue (a person looks at every
review-routed event), so capturing review-routed events is what makes labels joinable, while a small
share of auto-routed events is enough to estimate their accuracy. Each capture costs a write
(docs/deploy.md), so the default captures every review-routed event and 10 % of auto-routed ones.

Quarantined events are never captured: they have no prediction to join a label to (their bodies, when
wanted, go to the quarantine bucket).

The decision is a pure function of the event id and the route (a hash, not a random draw), so a
redelivered or duplicated event makes the same decision. Each capture stores its sampling weight
``1 / rate`` so accuracy estimates from labels can undo the over-sampling of review-routed events
(inverse-probability weighting, :mod:`pigeonhole.feedback.estimates`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

ROUTES: Final = ("auto", "review")
DEFAULT_REVIEW_RATE: Final = 1.0
DEFAULT_AUTO_RATE: Final = 0.1


def sampled(event_id: str, rate: float) -> bool:
    """Deterministic per event id (a retry or a duplicate makes the same choice), uniform over ids."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(event_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") < rate * 2.0**64


@dataclass(frozen=True)
class CapturePolicy:
    """Capture rate per route, each in [0, 1]. A route at rate 0 is never captured (and its accuracy
    cannot be estimated from labels)."""

    review_rate: float = DEFAULT_REVIEW_RATE
    auto_rate: float = DEFAULT_AUTO_RATE

    def __post_init__(self) -> None:
        for name, rate in (("review_rate", self.review_rate), ("auto_rate", self.auto_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {rate}")

    @classmethod
    def everything(cls) -> CapturePolicy:
        return cls(review_rate=1.0, auto_rate=1.0)

    def rate(self, route: str) -> float:
        if route == "review":
            return self.review_rate
        if route == "auto":
            return self.auto_rate
        raise ValueError(f"unknown route {route!r}")

    def weight(self, event_id: str, route: str) -> float | None:
        """The sampling weight ``1 / rate`` when this event's prediction is captured, else None."""
        rate = self.rate(route)
        return 1.0 / rate if sampled(event_id, rate) else None

    def may_capture(self, event_id: str) -> bool:
        """Whether some route captures this id (the hash is below the higher rate). When a label finds no
        capture and this is False, none will ever exist: the label is ``not_captured``, not pending."""
        return sampled(event_id, max(self.review_rate, self.auto_rate))

    def always_captures(self, event_id: str) -> bool:
        """Whether every route captures this id (the hash is below the lower rate): a missing capture then
        means the event was not classified (yet). Between the two, the route decides, which a reader of
        the predictions table cannot know without the prediction."""
        return sampled(event_id, min(self.review_rate, self.auto_rate))

    def expected_share(self, review_share: float) -> float:
        """Expected share of classified events captured when ``review_share`` of them go to review."""
        return review_share * self.review_rate + (1.0 - review_share) * self.auto_rate

    def to_env(self, review_name: str, auto_name: str) -> Mapping[str, str]:
        """The environment variables that reproduce this policy (the CDK stack sets them on every function)."""
        return {review_name: repr(self.review_rate), auto_name: repr(self.auto_rate)}
