"""The `make up` tail says why an event is in review, from the message itself."""

from __future__ import annotations

import json

from pigeonhole_tools.local.live import describe_landing
from pigeonhole_tools.local.streaming import Landing


def _review(**fields: object) -> Landing:
    body = {"id": "cli-1", "label": "card_arrival", "confidence": 0.24, **fields}
    return Landing(where="review", queue="review", message_id="m-1", body=json.dumps(body))


def test_an_unknown_event_is_shown_as_unknown_with_its_score() -> None:
    line = describe_landing(_review(route_reason="unknown", unknown_score=0.99))
    assert "unknown" in line
    assert "0.99" in line
    assert "below the confidence threshold" not in line


def test_a_low_confidence_event_is_shown_as_below_the_threshold() -> None:
    line = describe_landing(_review(route_reason="low_confidence", unknown_score=0.1))
    assert "below the confidence threshold" in line
    assert "unknown" not in line


def test_a_reason_the_tail_does_not_know_is_printed_as_it_came() -> None:
    assert "(something_new)" in describe_landing(_review(route_reason="something_new"))
