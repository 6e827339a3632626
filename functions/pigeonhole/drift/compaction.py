"""Merging a window's batch items once it has closed (the drift function), and reading windows back.

A closed window's batch items (:mod:`pigeonhole.drift.batches`) are read from every shard, merged
with each unit once, and the result is stored as ``W#<version>`` / ``C#<window start>``: the same
counter attributes as a window item, plus ``records`` (distinct units merged), ``late`` (late pointers
seen before the merge) and ``batches`` (items read). Later drift runs read this one item instead of
the batch items. A window is merged again only when the late partition holds more pointers for it
than ``late`` says. A batch counted after its window ended writes its pointer *before* its item, and a
merge counts only the pointers whose items it read, so a pointer whose item lands later (or never:
the record went to the DLQ) keeps the window due for another merge.
The merge is written only if it is larger (``records``, then ``late``): concurrent or stale drift
runs cannot roll it back.

A window's counters are the merge plus the ``W#<version>`` / ``<window start>[#shard]`` items
(label counters the feedback function ``ADD``s; event counters of the previous, transactional design).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.drift import batches
from pigeonhole.drift import layout as keys
from pigeonhole.drift.counters import CounterLayout, WindowCounters

COMPACTED_PREFIX = "C#"
ATTR_RECORDS_MERGED = "records"
ATTR_LATE = "late"


def compacted_sk(start: str) -> str:
    return f"{COMPACTED_PREFIX}{start}"


def read_batch_items(
    store: DynamoDBAdapter, table: str, version: str, first: str, last: str, shards: int
) -> dict[str, list[dict[str, Any]]]:
    """Batch items of the windows ``[first, last]`` by window start: one range query per shard."""
    found: dict[str, list[dict[str, Any]]] = {}
    for shard in range(shards):
        for item in store.query(table, batches.batch_pk(version, shard), (first, last + "#~")):
            found.setdefault(batches.window_of_sk(str(item[keys.SK])), []).append(item)
    return found


def late_pointers(store: DynamoDBAdapter, table: str, version: str, first: str, last: str) -> dict[str, set[str]]:
    """Late pointers (``<window start>#<batch key>``) per window start in ``[first, last]``."""
    found: dict[str, set[str]] = {}
    for p in store.query(table, batches.late_pk(version), (first, last + "#~"), projection=[keys.SK]):
        sk = str(p[keys.SK])
        found.setdefault(batches.window_of_sk(sk), set()).add(sk)
    return found


def store_merge(
    store: DynamoDBAdapter,
    table: str,
    version: str,
    start: str,
    layout: CounterLayout,
    items: Sequence[Mapping[str, Any]],
    *,
    late: int,
    now: datetime,
    ttl_days: int,
) -> tuple[WindowCounters, int]:
    """Merge one window's batch items and store the merge (unless a larger one exists); returns it and
    the distinct units merged."""
    records = batches.merged_records(items)
    counters = batches.counters_from_records(layout, records)
    size = 0 if records is None else int(records.size)
    item: dict[str, Any] = {
        keys.PK: keys.window_pk(version),
        keys.SK: compacted_sk(start),
        keys.ATTR_MODEL_VERSION: version,
        keys.ATTR_WINDOW_START: start,
        **counters.to_item_updates(),
        ATTR_RECORDS_MERGED: size,
        ATTR_LATE: late,
        "batches": len(items),
        "compacted_at": keys.iso(now),
        keys.TTL: keys.expires_at(keys.parse_iso(start), ttl_days),
    }
    store.put_if_larger(table, item, (ATTR_RECORDS_MERGED, ATTR_LATE))
    return counters, size


def compact_closed(
    store: DynamoDBAdapter,
    table: str,
    version: str,
    starts: Sequence[str],
    layout: CounterLayout,
    *,
    shards: int,
    now: datetime,
    ttl_days: int,
) -> list[str]:
    """Merge every window of ``starts`` (consecutive, all closed) that has batch items but no merge yet,
    or new late pointers since its merge. Windows without items get no merge (nothing to store; the
    next run's range query over them costs one read unit). Returns the windows merged."""
    if not starts:
        return []
    late = late_pointers(store, table, version, starts[0], starts[-1])  # before any batch item is read
    done = {
        str(i[keys.SK])[len(COMPACTED_PREFIX) :]: int(i.get(ATTR_LATE, 0))
        for i in store.query(
            table,
            keys.window_pk(version),
            (compacted_sk(starts[0]), compacted_sk(starts[-1])),
            projection=[keys.SK, ATTR_LATE],
        )
    }
    todo = [s for s in starts if s not in done or len(late.get(s, ())) > done[s]]
    merged: list[str] = []
    for run in _runs(starts, set(todo)):
        found = read_batch_items(store, table, version, run[0], run[-1], shards)
        for start in run:
            if start in found:
                # A pointer counts once the item behind it was read (the recorder writes the pointer first).
                seen = {str(i[keys.SK]).split(".", 1)[0] for i in found[start]}
                counted = len(late.get(start, set()) & seen)
                store_merge(
                    store, table, version, start, layout, found[start], late=counted, now=now, ttl_days=ttl_days
                )
                merged.append(start)
    return merged


def _runs(starts: Sequence[str], wanted: set[str]) -> list[list[str]]:
    """Maximal runs of consecutive ``starts`` that are all ``wanted`` (one range query each)."""
    runs: list[list[str]] = []
    current: list[str] = []
    for s in starts:
        if s in wanted:
            current.append(s)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def read_windows(
    store: DynamoDBAdapter, table: str, version: str, first: str, last: str, layout: CounterLayout
) -> dict[str, WindowCounters]:
    """Merged window counters by start for windows in ``[first, last]`` (merges + window items).
    Windows with neither events, quarantined records nor labels are left out."""
    parts: dict[str, list[Mapping[str, Any]]] = {}
    for item in store.query(table, keys.window_pk(version), (first, last + keys.SHARD_SEPARATOR + "~")):
        parts.setdefault(keys.window_start_of(str(item[keys.SK])), []).append(item)
    for item in store.query(table, keys.window_pk(version), (compacted_sk(first), compacted_sk(last))):
        if int(item.get(ATTR_RECORDS_MERGED, 0)) > 0:
            parts.setdefault(str(item[keys.SK])[len(COMPACTED_PREFIX) :], []).append(item)
    return {
        start: WindowCounters.merge_all(layout, (WindowCounters.from_item(p, layout) for p in items))
        for start, items in parts.items()
    }


def read_window(
    store: DynamoDBAdapter, table: str, version: str, start: str, layout: CounterLayout, *, shards: int = 1
) -> WindowCounters:
    """One window as it stands now, merged or not: its batch items (each unit once) plus its window items.
    For tools and tests; the drift function reads the stored merge instead (:func:`read_windows`)."""
    records = batches.merged_records(read_batch_items(store, table, version, start, start, shards).get(start, []))
    items = store.query(table, keys.window_pk(version), (start, start + keys.SHARD_SEPARATOR + "~"))
    return WindowCounters.merge_all(
        layout,
        [batches.counters_from_records(layout, records), *(WindowCounters.from_item(i, layout) for i in items)],
    )
