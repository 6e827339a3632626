"""The batch-item window accounting's own failure modes: the item size limit, late items after a merge,
late duplicates, stale merges, a merge racing a late write, and the write-unit target.

Every count is checked against the distinct events, computed without the recorder.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.adapters.dynamodb_values import item_size_bytes, write_units
from pigeonhole.classify.routing import Classification
from pigeonhole.drift import batches, compaction
from pigeonhole.drift import layout as keys
from pigeonhole.drift.recorder import WindowRecorder
from pigeonhole.drift.service import DriftConfig, run_drift
from pigeonhole_tools.monitoring.window_cost import batch_cost

from .monitoring_support import (
    PREDICTIONS,
    VERSION,
    WINDOWS,
    at,
    classification,
    get_window,
    manifest,
    moto_dynamodb,
    runtime,
    scan,
)

W0700 = "2026-11-29T07:00:00Z"
TEXTS = ["when will my card arrive", "what is the exchange rate", "lost card", "zzz qqq unknown words here"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ddb() -> Iterator[Any]:
    with moto_dynamodb() as client:
        yield client


def make_events(n: int, prefix: str, seed: int = 0, when: str = "2026-11-29T07:01:00Z") -> list[Classification]:
    rng = random.Random(seed)
    return [
        classification(f"{prefix}-{i}", rng.randrange(3), round(rng.uniform(0.3, 1.0), 6), when, rng.choice(TEXTS))
        for i in range(n)
    ]


def observe(client: Any, events: list[Classification], when: str, tag: str = "m", **kwargs: Any) -> None:
    rec = WindowRecorder(DynamoDBAdapter(client), WINDOWS, PREDICTIONS, clock=at(when).timestamp, **kwargs)
    assert rec.observe([(f"{tag}-{e.event.id}", e) for e in events], [], runtime()) == {}


def drift(client: Any, now: str, shards: int = 1) -> Any:
    config = DriftConfig(window_seconds=300, grace_seconds=120, reference_windows=0, lookback_windows=6, shards=shards)
    return run_drift(
        at(now), store=DynamoDBAdapter(client), manifest=manifest(), windows_table=WINDOWS, config=config, emit=list
    )


def merged(client: Any, start: str = W0700) -> dict[str, Any]:
    (item,) = [i for i in scan(client, WINDOWS) if i["sk"] == compaction.compacted_sk(start)]
    return item


def batch_items(client: Any) -> list[dict[str, Any]]:
    return [i for i in scan(client, WINDOWS) if batches.parse_batch_pk(i["pk"]) is not None]


# -- the item size limit ----------------------------------------------------------------------------


def test_a_batch_too_large_for_one_item_splits_into_parts_that_merge_exactly(
    ddb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batches, "MAX_RECORD_BYTES_PER_ITEM", 200)  # 6 records of 31 bytes per part (2 features)
    events = make_events(40, "big")
    observe(ddb, events, "2026-11-29T07:03:00Z")
    parts = batch_items(ddb)
    assert len(parts) == 7  # ceil(40 / 6), deterministic: sorted by digest
    assert all(len(p["r"].value) <= 200 for p in parts)
    observe(ddb, events, "2026-11-29T07:03:30Z", tag="again")  # a redelivery overwrites the same parts
    assert sorted(p["sk"] for p in batch_items(ddb)) == sorted(p["sk"] for p in parts)
    assert get_window(ddb, W0700)["n"] == 40


def test_the_largest_sqs_batch_fits_dynamodb_items() -> None:
    """10,000 records (the SQS maximum with a batching window) of the real BANKING77 layout."""
    cost = batch_cost(REPO / "layers" / "model", 10_000)
    assert cost.items == 2
    assert cost.item_bytes / cost.items < 400 * 1024


# -- write units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "most"), [(1, 1.0), (10, 0.1), (100, 0.04)])
def test_write_units_per_event_at_batch_1_10_100(size: int, most: float) -> None:
    """Computed from the item the recorder sends (moto's ConsumedCapacity is a constant per call)."""
    cost = batch_cost(REPO / "layers" / "model", size)
    assert cost.items == 1
    assert cost.units_per_event <= most


def test_item_size_follows_dynamodb_rules() -> None:
    assert item_size_bytes({"pk": "abc", "r": b"\x00" * 10}) == 2 + 3 + 1 + 10
    assert item_size_bytes({"n": 12345}) == 1 + 3 + 1  # 5 significant digits: 3 bytes, plus 1
    assert write_units({"pk": "x" * 1021}) == 1  # 2 + 1021 = 1023 bytes
    assert write_units({"pk": "x" * 1023}) == 2


# -- late items, late duplicates, stale merges ----------------------------------------------------


def test_a_late_batch_after_the_merge_is_merged_again_and_rejudged(ddb: Any) -> None:
    early = make_events(25, "a", seed=1)
    observe(ddb, early, "2026-11-29T07:03:00Z")
    first = drift(ddb, "2026-11-29T07:08:00Z")  # 07:05 + 120 s: closed, merged, reported
    assert [w.events for w in first.windows] == [25]
    assert (merged(ddb)["records"], merged(ddb)["late"]) == (25, 0)

    late = make_events(10, "late", seed=2)
    observe(ddb, late + early[:5], "2026-11-29T07:09:00Z", tag="retry")  # a retry, some already counted
    pointers = [i for i in scan(ddb, WINDOWS) if i["pk"] == batches.late_pk(VERSION)]
    assert [p["sk"].split("#")[0] for p in pointers] == [W0700]

    second = drift(ddb, "2026-11-29T07:10:00Z")
    assert [(w.window_start, w.events) for w in second.rejudged] == [(W0700, 35)]  # each event once
    assert (merged(ddb)["records"], merged(ddb)["late"]) == (35, 1)
    third = drift(ddb, "2026-11-29T07:11:00Z")  # nothing new: no merge, no re-judge
    assert (third.windows, third.rejudged) == ([], [])


def test_a_late_duplicate_is_merged_again_but_changes_nothing(ddb: Any) -> None:
    events = make_events(20, "d", seed=3)
    observe(ddb, events, "2026-11-29T07:03:00Z")
    drift(ddb, "2026-11-29T07:08:00Z")
    observe(ddb, events[3:9], "2026-11-29T07:20:00Z", tag="dup")  # EventBridge duplicates, much later
    run = drift(ddb, "2026-11-29T07:21:00Z")
    assert run.rejudged == []
    assert (merged(ddb)["records"], merged(ddb)["late"]) == (20, 1)
    assert get_window(ddb, W0700)["n"] == 20


def test_a_stale_merge_cannot_roll_back_a_larger_one(ddb: Any) -> None:
    events = make_events(12, "s", seed=4)
    observe(ddb, events[:6], "2026-11-29T07:03:00Z")
    observe(ddb, events[6:], "2026-11-29T07:04:00Z")
    store = DynamoDBAdapter(ddb)
    layout = keys.counter_layout(manifest())
    items = compaction.read_batch_items(store, WINDOWS, VERSION, W0700, W0700, 1)[W0700]
    args: dict[str, Any] = {"now": at("2026-11-29T07:08:00Z"), "ttl_days": 90}
    compaction.store_merge(store, WINDOWS, VERSION, W0700, layout, items, late=0, **args)
    # A slower run that had read only the first item (and no pointer) writes last: refused.
    compaction.store_merge(store, WINDOWS, VERSION, W0700, layout, items[:1], late=0, **args)
    assert merged(ddb)["records"] == 12
    assert merged(ddb)["n"] == 12


def test_a_merge_that_missed_a_late_item_is_repaired_by_its_pointer(ddb: Any) -> None:
    """The race the pointer order closes: a merge reads the batch items just before a late batch writes its
    item and pointer. The pointer was not counted in that merge's ``late``, so the next run merges again."""
    observe(ddb, make_events(8, "r", seed=5), "2026-11-29T07:03:00Z")
    store = DynamoDBAdapter(ddb)
    layout = keys.counter_layout(manifest())
    items = compaction.read_batch_items(store, WINDOWS, VERSION, W0700, W0700, 1)[W0700]  # the merge reads ...
    observe(ddb, make_events(4, "x", seed=6), "2026-11-29T07:08:30Z")  # ... a late batch lands ...
    compaction.store_merge(  # ... and the merge stores what it read, with the pointers it had counted (0)
        store, WINDOWS, VERSION, W0700, layout, items, late=0, now=at("2026-11-29T07:08:31Z"), ttl_days=90
    )
    assert merged(ddb)["records"] == 8
    run = drift(ddb, "2026-11-29T07:09:00Z")
    assert [w.events for w in run.windows] == [12]  # first report, after the re-merge
    assert (merged(ddb)["records"], merged(ddb)["late"]) == (12, 1)


def test_sharded_windows_are_merged_from_every_shard(ddb: Any) -> None:
    events = make_events(60, "sh", seed=7)
    for i in range(0, 60, 10):
        observe(ddb, events[i : i + 10], "2026-11-29T07:03:00Z", shards=4)
    assert len({i["pk"] for i in batch_items(ddb)}) > 1
    run = drift(ddb, "2026-11-29T07:08:00Z", shards=4)
    assert [w.events for w in run.windows] == [60]


def test_the_scaling_model_has_no_conflicts_for_plain_puts_and_spreads_writes_over_shards() -> None:
    from pigeonhole_tools.monitoring.window_cost import scaling_row

    now = scaling_row(200, 4, batch_s=0.05, txn_s=0.01, transactional=False)
    assert (now.batches_per_s, now.wcu_per_partition_s, now.conflict_share) == (4000, 1000, 0.0)
    before = [scaling_row(20, s, batch_s=0.05, txn_s=0.01, transactional=True).conflict_share for s in (1, 4, 16)]
    assert before == sorted(before, reverse=True)  # shards cut conflicts of the hot item, never to zero
    assert before[-1] > 0.2
