"""Batch items: the classifier's window accounting at one plain write per batch and window.

Why: a transaction with a marker per event costs ≈ 2.4 write units per event and funnels every
batch through one hot item per window. Instead each batch writes, per window it touches, ONE item
holding one fixed-size record per counted unit (event or quarantined record): a 16-byte digest of
the unit's dedup key (``P#<version>#<event id>`` / ``Q#…``), the predicted class, the confidence, the
review byte (bit 0 review, bit 1 routed as unknown) and the feature bin indices. Its key is derived
from the batch's content (the sorted dedup keys of its units in that window), so a redelivery of the
same batch overwrites the same item, and its shard is derived from that key, so all shards are hit
evenly and deterministically.

Exactly once is decided when the window is read: records of all the window's items are merged and
de-duplicated by digest (a duplicate, a redelivery in a different composition, a crash between two
windows' writes: every copy of a unit carries the same digest and the same contribution). No
conditions, no transactions, no read-modify-write: concurrent writers cannot conflict.

Keys (windows table): ``E#<version>#<shard>`` / ``<window start>#<batch key>[.<part>]`` for batch
items (the shard in the partition key: ``shards`` partitions share the write load of every window;
one range query per shard reads a run of windows); ``E#<version>#late`` / ``<window start>#<batch
key>`` for a pointer written before every batch item whose window had already ended when the batch was
counted (so the drift function knows which closed windows to merge again). The drift function stores
each window's merge as ``W#<version>`` / ``C#<window start>`` (see :mod:`pigeonhole.drift.compaction`).
Design, costs and failure modes: ``docs/monitoring.md`` ("Window accounting").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pigeonhole.drift.counters import CounterLayout, WindowCounters, bin_index

FORMAT = 1  # record format version, stored with every item
DIGEST_BYTES = 16  # 128 bits: P(any collision among 10^12 units) < 2^-47
MAX_RECORD_BYTES_PER_ITEM = 256_000  # well below DynamoDB's 400 KB item limit, keys included
BATCH_PREFIX = "E#"
LATE_SUFFIX = "late"
ATTR_RECORDS = "r"
ATTR_FORMAT = "fmt"
ATTR_FEATURES = "nf"
ATTR_AT = "at"
REVIEW_BIT = 1  # of a record's "rev" byte
UNKNOWN_BIT = 2


def digest(dedup_key: str) -> bytes:
    """The unit's identity inside records: equal for every copy of the same event (or quarantined record)."""
    return hashlib.sha256(dedup_key.encode("utf-8")).digest()[:DIGEST_BYTES]


def record_dtype(n_features: int) -> np.dtype[Any]:
    fields: list[Any] = [("id", f"S{DIGEST_BYTES}"), ("pred", "<i2"), ("conf", "<f8"), ("rev", "u1")]
    if n_features:
        fields.append(("f", "<u2", (n_features,)))
    return np.dtype(fields)


@dataclass(frozen=True)
class Contribution:
    """One unit's share of its window: ``predicted`` -1 marks a quarantined record."""

    dedup_key: str
    predicted: int = -1
    confidence: float = 0.0
    review: bool = False
    features: Mapping[str, float] | None = None
    unknown: bool = False  # routed to review as unknown (implies review)


def encode(layout: CounterLayout, units: Sequence[Contribution]) -> NDArray[Any]:
    """Records of ``units`` (one per distinct dedup key), sorted by digest so equal sets encode equally."""
    if layout.n_classes > np.iinfo(np.int16).max:
        raise ValueError("more classes than a record can hold")
    names = list(layout.feature_edges)
    distinct = {u.dedup_key: u for u in units}
    rec = np.zeros(len(distinct), dtype=record_dtype(len(names)))
    if not distinct:
        return rec
    members = list(distinct.values())
    rec["id"] = [digest(u.dedup_key) for u in members]
    rec["pred"] = [u.predicted for u in members]
    rec["conf"] = [u.confidence if u.predicted >= 0 else 0.0 for u in members]
    # The review byte: bit 0 review, bit 1 unknown (a subset of review). Format 1 items written before
    # the unknown route hold 0 or 1 and read back as no unknown events: no format change needed.
    rec["rev"] = [
        (REVIEW_BIT if u.review or u.unknown else 0) | (UNKNOWN_BIT if u.unknown else 0) if u.predicted >= 0 else 0
        for u in members
    ]
    for j, name in enumerate(names):
        values = [(u.features or {}).get(name, 0.0) if u.predicted >= 0 else 0.0 for u in members]
        rec["f"][:, j] = bin_index(values, layout.feature_edges[name])
    return np.sort(rec, order="id")


def decode(blob: bytes | bytearray | memoryview, n_features: int) -> NDArray[Any]:
    raw = bytes(blob.value if hasattr(blob, "value") else blob)  # boto3 returns Binary
    dtype = record_dtype(n_features)
    if len(raw) % dtype.itemsize:
        raise ValueError(f"record blob of {len(raw)} bytes is not a multiple of {dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype)


def batch_key(dedup_keys: Iterable[str]) -> str:
    """The item key of a batch's units in one window: same units → same key (a redelivery overwrites)."""
    h = hashlib.sha256("\n".join(sorted(set(dedup_keys))).encode("utf-8"))
    return h.hexdigest()[:32]


def shard_of(key: str, shards: int) -> int:
    return int(key[:8], 16) % shards if shards > 1 else 0


def batch_pk(version: str, shard: int) -> str:
    return f"{BATCH_PREFIX}{version}#{shard:03d}"


def batch_sk(start: str, key: str) -> str:
    return f"{start}#{key}"


def window_of_sk(sk: str) -> str:
    """The window start of a batch item's (or late pointer's) sort key."""
    return sk.split("#", 1)[0]


def late_pk(version: str) -> str:
    return f"{BATCH_PREFIX}{version}#{LATE_SUFFIX}"


def parse_batch_pk(pk: str) -> tuple[str, int] | None:
    """(version, shard) of a batch item's partition key; None for anything else (late pointers too)."""
    if not pk.startswith(BATCH_PREFIX) or pk.endswith("#" + LATE_SUFFIX):
        return None
    head, shard = pk.rsplit("#", 1)
    return head[len(BATCH_PREFIX) :], int(shard)


def window_items(
    layout: CounterLayout,
    version: str,
    start: str,
    units: Sequence[Contribution],
    *,
    shards: int,
    expires_at: int,
    pk: str = "pk",
    sk: str = "sk",
    ttl: str = "expires_at",
) -> list[dict[str, Any]]:
    """The item(s) one batch writes for one window (several only past ``MAX_RECORD_BYTES_PER_ITEM``)."""
    records = encode(layout, units)
    key = batch_key(u.dedup_key for u in units)
    per_item = max(1, MAX_RECORD_BYTES_PER_ITEM // records.dtype.itemsize)
    parts = [records[i : i + per_item] for i in range(0, max(len(records), 1), per_item)]
    partition = batch_pk(version, shard_of(key, shards))
    return [
        {
            pk: partition,
            sk: batch_sk(start, key if len(parts) == 1 else f"{key}.{i:03d}"),
            ATTR_RECORDS: part.tobytes(),
            ATTR_FEATURES: len(layout.feature_edges),
            ATTR_FORMAT: FORMAT,
            ttl: expires_at,
        }
        for i, part in enumerate(parts)
    ]


def late_pointer(
    version: str, item_sk: str, at: int, expires_at: int, *, pk: str = "pk", sk: str = "sk"
) -> dict[str, Any]:
    """Tells the drift function that the window of batch item ``item_sk`` got it after it ended."""
    return {pk: late_pk(version), sk: item_sk.split(".", 1)[0], ATTR_AT: at, "expires_at": expires_at}


def merged_records(items: Iterable[Mapping[str, Any]], *, pk: str = "pk", sk: str = "sk") -> NDArray[Any] | None:
    """Records of all ``items`` (of one window), each unit once (the first copy in key order)."""
    ordered = sorted(items, key=lambda i: (str(i[pk]), str(i[sk])))
    arrays = []
    for item in ordered:
        if int(item.get(ATTR_FORMAT, FORMAT)) != FORMAT:
            raise ValueError(f"batch item format {item.get(ATTR_FORMAT)} is not {FORMAT}")
        arrays.append(decode(item[ATTR_RECORDS], int(item.get(ATTR_FEATURES, 0))))
    if not arrays:
        return None
    widths = {a.dtype for a in arrays}
    if len(widths) > 1:
        raise ValueError("batch items of one window disagree on the record layout")
    allrec = np.concatenate(arrays)
    _, first = np.unique(allrec["id"], return_index=True)
    return allrec[np.sort(first)]


def counters_from_records(layout: CounterLayout, records: NDArray[Any] | None) -> WindowCounters:
    """Window counters of distinct records (the event part of a window: classified and quarantined)."""
    if records is None or records.size == 0:
        return WindowCounters.empty(layout)
    events = records[records["pred"] >= 0]
    if np.any(events["pred"] >= layout.n_classes):
        raise ValueError("a record's class index is outside the layout")
    conf = np.sort(events["conf"].astype(np.float64))  # summed in value order: independent of item order
    features: dict[str, NDArray[np.int64]] = {}
    for j, name in enumerate(layout.feature_edges):
        bins = layout.feature_bins(name)
        idx = events["f"][:, j].astype(np.int64)
        if np.any(idx >= bins):
            raise ValueError(f"a record's bin index for {name} is outside the layout")
        features[name] = np.bincount(idx, minlength=bins).astype(np.int64)
    edges = np.asarray(layout.confidence_edges, dtype=np.float64)
    return WindowCounters(
        layout=layout,
        events=int(events.size),
        review=int(np.count_nonzero(events["rev"])),
        unknown=int(np.count_nonzero(events["rev"] & UNKNOWN_BIT)),
        quarantined=int(records.size - events.size),
        class_counts=np.bincount(events["pred"].astype(np.int64), minlength=layout.n_classes).astype(np.int64),
        confidence_counts=np.bincount(bin_index(conf, edges), minlength=edges.size - 1).astype(np.int64),
        confidence_sum=float(conf.sum()),
        confidence_sq_sum=float(np.dot(conf, conf)),
        feature_counts=features,
    )


def totals_from_records(records: NDArray[Any] | None) -> dict[str, int]:
    """``n``, ``rev`` and ``q`` of distinct records, without a layout (reliability accounting)."""
    if records is None:
        return {"n": 0, "rev": 0, "q": 0}
    events = records["pred"] >= 0
    return {
        "n": int(np.count_nonzero(events)),
        "rev": int(np.count_nonzero(records["rev"][events])),
        "q": int(records.size - np.count_nonzero(events)),
    }
