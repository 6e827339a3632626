"""Every event that entered matched to where it landed, and what the system counted itself."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pigeonhole import constants as c
from pigeonhole_tools.local.emulator import (
    LocalResources,
    dynamodb_client,
)
from pigeonhole_tools.local.samples import envelope_id, producer_id
from pigeonhole_tools.local.streaming import Landing, Sent

if TYPE_CHECKING:
    pass


@dataclass
class Accounting:
    """Each event that entered, matched to every place it landed; strays are landings matching no event."""

    by_key: dict[str, list[Landing]]
    strays: list[Landing] = field(default_factory=list)

    @property
    def lost(self) -> list[str]:
        return sorted(k for k, v in self.by_key.items() if not v)

    @property
    def duplicated(self) -> list[str]:
        return sorted(k for k, v in self.by_key.items() if len(v) > 1)

    @property
    def accounted(self) -> int:
        return sum(1 for v in self.by_key.values() if v)


def account(sent: Sequence[Sent], landings: Sequence[Landing]) -> Accounting:
    """Match landings to sent events: by SQS message id, EventBridge event id, or the producer's id."""
    entered = [s for s in sent if s.rejected is None]
    by_key: dict[str, list[Landing]] = {s.event.key: [] for s in entered}
    by_message = {s.message_id: s.event.key for s in entered if s.message_id}
    by_bus = {s.bus_event_id: s.event.key for s in entered if s.bus_event_id}

    def key_of_body(body: Any) -> str | None:
        if not isinstance(body, str):
            return None
        bus_id = envelope_id(body)
        if bus_id in by_bus:
            return by_bus[bus_id]
        pid = producer_id(body)
        return pid if pid in by_key else None

    accounting = Accounting(by_key)
    for landing in landings:
        key = by_message.get(landing.message_id)  # a DLQ keeps the ingest message id
        doc = landing.doc()
        if key is None and isinstance(doc, dict) and doc.get("schema") == c.QUARANTINE_SCHEMA:
            key = by_message.get(doc.get("message_id") or "") or key_of_body(doc.get("body"))
        if key is None:
            key = key_of_body(landing.body)
        if key is None:
            accounting.strays.append(landing)
        else:
            by_key[key].append(landing)
    return accounting


def inference_times(log_file: Path | None) -> list[float]:
    """The InferenceTime values the handler emitted as EMF metrics (one per batch) into its log file."""
    if log_file is None or not log_file.is_file():
        return []
    values: list[float] = []
    for line in log_file.read_text(encoding="utf-8").splitlines():
        if '"InferenceTime"' not in line or not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        value = doc.get("InferenceTime") if isinstance(doc, dict) else None
        if isinstance(value, int | float):
            values.append(float(value))
        elif isinstance(value, list):
            values.extend(float(v) for v in value if isinstance(v, int | float))
    return values


def window_totals(resources: LocalResources) -> dict[str, int]:
    """The recorder's window counters (events, review, quarantined) over every window: batch items with
    each unit once per window (as the drift function merges them) plus the window items (the drift
    function's merges are derived from the batch items and skipped). ``items``: batch items read."""
    from pigeonhole.adapters.dynamodb import deserialize_item
    from pigeonhole.drift import batches
    from pigeonhole.drift.compaction import COMPACTED_PREFIX
    from pigeonhole.drift.layout import REPORT_PREFIX

    dynamodb = dynamodb_client(resources.endpoint, resources.region)
    totals: Counter[str] = Counter()
    per_window: dict[str, list[dict[str, object]]] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=resources.windows_table):
        for raw in page.get("Items", []):
            item = deserialize_item(raw)
            pk, sk = str(item.get(c.TABLE_PARTITION_KEY, "")), str(item.get(c.TABLE_SORT_KEY, ""))
            if batches.parse_batch_pk(pk) is not None:
                per_window.setdefault(batches.window_of_sk(sk), []).append(item)
                totals["items"] += 1
                continue
            if not pk.startswith("W#") or sk.startswith((REPORT_PREFIX, COMPACTED_PREFIX)):
                continue
            for name in ("n", "rev", "q"):
                totals[name] += int(item.get(name, 0))
    for items in per_window.values():
        totals.update(batches.totals_from_records(batches.merged_records(items)))
    return dict(totals)
