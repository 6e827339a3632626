"""Write units per event of the classifier's window accounting, computed from the items it writes.

Why computed: moto answers ``ReturnConsumedCapacity`` with a constant per call, whatever the item size,
so the emulator cannot measure write units; DynamoDB bills a plain put by the item's size (1 unit per
started KB), which :func:`pigeonhole.adapters.dynamodb_values.write_units` computes from the same item
the recorder sends. ``python -m pigeonhole_tools.monitoring.window_cost [model dir]`` prints the table
quoted in docs/monitoring.md.
"""

from __future__ import annotations

import random
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from pigeonhole.adapters.dynamodb_values import item_size_bytes, write_units
from pigeonhole.drift import batches
from pigeonhole.drift import layout as keys
from pigeonhole.model.manifest import load_manifest

WINDOW = "2026-11-29T07:00:00Z"


@dataclass(frozen=True)
class BatchCost:
    batch_size: int
    items: int
    item_bytes: int
    write_units: int

    @property
    def units_per_event(self) -> float:
        return self.write_units / self.batch_size


def batch_cost(model_dir: Path, batch_size: int, *, shards: int = 1, seed: int = 0) -> BatchCost:
    """The items one batch of ``batch_size`` events of one window writes (UUID event ids, random
    classes, confidences and feature values within the baseline's range), and their write units."""
    manifest = load_manifest(model_dir)
    layout = keys.counter_layout(manifest)
    rng = random.Random(seed)
    units = [
        batches.Contribution(
            keys.prediction_pk(manifest.version, str(uuid.UUID(int=rng.getrandbits(128)))),
            rng.randrange(layout.n_classes),
            rng.uniform(0.2, 1.0),
            rng.random() < 0.2,
            {name: rng.uniform(edges[0], edges[-1]) for name, edges in layout.feature_edges.items()},
        )
        for _ in range(batch_size)
    ]
    items = batches.window_items(layout, manifest.version, WINDOW, units, shards=shards, expires_at=1_800_000_000)
    return BatchCost(
        batch_size,
        len(items),
        sum(item_size_bytes(i) for i in items),
        sum(write_units(i) for i in items),
    )


PARTITION_WCU_PER_SECOND = 1000  # DynamoDB's per-partition write limit


@dataclass(frozen=True)
class ScalingRow:
    """Windows under a backlog: every one of ``concurrency`` pollers busy, one batch per ``batch_s``."""

    concurrency: int
    shards: int
    batches_per_s: float
    wcu_per_partition_s: float  # batch items (1 WCU each at batch 10) per shard partition
    conflict_share: float  # share of a batch's write attempts cancelled by TransactionConflict


def scaling_row(concurrency: int, shards: int, *, batch_s: float, txn_s: float, transactional: bool) -> ScalingRow:
    """Arithmetic model. Plain puts (this design) never conflict. For the previous design (one transaction
    per batch on the window's hot item), a batch conflicts when any other poller on the same shard item is
    inside its own transaction: each is for a share ``txn_s / batch_s`` of the time, independently, so
    P = 1 - (1 - txn_s / batch_s) ** ((concurrency - 1) / shards) per attempt (retries with back-off
    only spread the same load, so P is also roughly the share of attempts that are wasted)."""
    batches = concurrency / batch_s
    if transactional:
        busy = min(txn_s / batch_s, 1.0)
        conflicts = 1.0 - (1.0 - busy) ** ((concurrency - 1) / shards)
        per_partition = 2 * batches / shards  # a transactional write of a <= 1 KB item: 2 WCU (markers aside)
    else:
        conflicts = 0.0
        per_partition = batches / shards
    return ScalingRow(concurrency, shards, batches, per_partition, conflicts)


def main(argv: list[str]) -> None:
    model_dir = Path(argv[0]) if argv else Path("layers/model")
    print("| batch size | items | item bytes | write units | write units / event |")
    print("|---:|---:|---:|---:|---:|")
    for size in (1, 10, 100, 1000, 10_000):
        c = batch_cost(model_dir, size)
        print(f"| {size} | {c.items} | {c.item_bytes} | {c.write_units} | {c.units_per_event:.3f} |")
    print()
    print("| design | pollers | shards | batches/s | WCU/s per partition | attempts that conflict |")
    print("|---|---:|---:|---:|---:|---:|")
    for transactional in (True, False):
        for concurrency in (20, 200):
            for shards in (1, 4, 16):
                r = scaling_row(concurrency, shards, batch_s=0.05, txn_s=0.01, transactional=transactional)
                name = "transaction per batch (before)" if transactional else "batch items (now)"
                print(
                    f"| {name} | {concurrency} | {shards} | {r.batches_per_s:.0f} | {r.wcu_per_partition_s:.0f} "
                    f"| {r.conflict_share:.1%} |"
                )


if __name__ == "__main__":
    main(sys.argv[1:])
