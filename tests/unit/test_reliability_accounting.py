"""The fault run's window invariant, on hand-made table items: what it accepts and what it catches.

Why: under faults a counting write can land while its answer is lost; if every later delivery fails, the
event is dead-lettered *and* counted (once). The invariant must accept that and still catch a unit
counted in two windows or a dead letter counted without ever being published.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pigeonhole.drift import batches
from pigeonhole.drift import layout as keys
from pigeonhole.drift.counters import CounterLayout
from pigeonhole.naming import MAX_RECEIVE_COUNT
from pigeonhole_tools.reliability.accounting import Accounting, Where, merge_windows, units_in_several_windows

VERSION = "1.0.0"
LAYOUT = CounterLayout(n_classes=3, confidence_edges=(0.0, 0.5, 1.0), feature_edges={})
W1, W2 = "2026-12-04T10:00:00Z", "2026-12-04T10:05:00Z"


def item(window: str, units: list[batches.Contribution]) -> dict[str, Any]:
    (only,) = batches.window_items(LAYOUT, VERSION, window, units, shards=1, expires_at=0)
    return only


def classified(event_id: str, review: bool = False) -> batches.Contribution:
    return batches.Contribution(keys.prediction_pk(VERSION, event_id), 1, 0.9, review)


def quarantined(event_id: str) -> batches.Contribution:
    return batches.Contribution(keys.quarantine_pk(VERSION, event_id, "m"))


def accounting(places: dict[str, list[Where]]) -> Accounting:
    return Accounting(
        entered=len(places),
        places={k: Counter(v) for k, v in places.items()},
        receives=Counter(dict.fromkeys(places, MAX_RECEIVE_COUNT)),
        kinds=dict.fromkeys(places, "valid"),
        strays=0,
        explained_by_lost=set(),
    )


def test_a_dead_letter_counted_by_a_landed_write_is_expected_once() -> None:
    acc = accounting({"a": ["output"], "b": ["review", "dlq"], "c": ["dlq"], "d": ["quarantine"]})
    # b was published to review and counted (its write landed, the answer was lost), then dead-lettered;
    # c never got past publishing and is not counted.
    totals = merge_windows(
        [item(W1, [classified("a"), classified("b", review=True)]), item(W2, [quarantined("d"), classified("a")])]
    )
    assert units_in_several_windows(totals) == 1  # a: counted in two windows
    totals = merge_windows([item(W1, [classified("a"), classified("b", review=True)]), item(W2, [quarantined("d")])])
    assert (totals.n, totals.rev, totals.q) == (2, 1, 1)
    assert acc.expected_windows() == {"n": 1, "rev": 0, "q": 1}  # without the table: dead letters uncounted
    assert acc.expected_windows(totals) == {"n": 2, "rev": 1, "q": 1}
    assert acc.window_mismatches(totals) == {}
    assert acc.dead_letter_miscounts(totals) == []
    assert units_in_several_windows(totals) == 0


def test_a_dead_letter_counted_without_being_published_is_caught() -> None:
    acc = accounting({"a": ["output"], "c": ["dlq"]})
    totals = merge_windows([item(W1, [classified("a"), classified("c")])])
    assert acc.window_mismatches(totals) == {}  # the totals alone cannot tell ...
    assert acc.dead_letter_miscounts(totals) == ["c"]  # ... the per-event check does


def test_a_missing_or_extra_count_is_a_mismatch() -> None:
    acc = accounting({"a": ["output"], "e": ["review"]})
    totals = merge_windows([item(W1, [classified("a")])])
    assert acc.window_mismatches(totals) == {"n": (2, 1), "rev": (1, 0)}
    totals = merge_windows([item(W1, [classified("a"), classified("e", review=True), classified("x")])])
    assert acc.window_mismatches(totals) == {"n": (2, 3)}


def test_a_digest_ending_in_a_zero_byte_is_still_found() -> None:
    """numpy's fixed-width bytes drop trailing NULs when read out: about 1 unit in 256 has such a digest."""
    zero = next(f"z{i}" for i in range(100_000) if batches.digest(keys.prediction_pk(VERSION, f"z{i}"))[-1] == 0)
    acc = accounting({zero: ["output", "dlq"]})
    totals = merge_windows([item(W1, [classified(zero)])])
    assert acc.dead_letters_counted(totals)  # found by its full 16-byte digest
    assert acc.window_mismatches(totals) == {}


def test_a_contract_breaker_dead_lettered_by_faults_is_not_misrouted() -> None:
    """Quarantined on its first delivery, then every delivery's counting step failed: the DLQ is its final
    place, explained by the faults (five receives), exactly like a good event's."""
    acc = accounting({"bad": ["quarantine", "dlq"], "early": ["dlq"], "leaked": ["quarantine", "dlq"]})
    acc.kinds = dict.fromkeys(acc.places, "invalid")
    # "leaked" was dead-lettered without five failed deliveries: not the faults.
    acc.receives = Counter({"bad": MAX_RECEIVE_COUNT, "early": MAX_RECEIVE_COUNT, "leaked": 1})
    assert acc.misrouted == ["leaked"]
    assert acc.unexpected_dead_letters == ["leaked"]
