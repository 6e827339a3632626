"""Where every event of a run went, and the invariants that must hold at the end.

Each landing (a message read back from the output sink, review, quarantine or a dead-letter queue)
is matched to the event it came from: by SQS message id (a DLQ and the quarantine message keep it),
else by the producer's id in the body. Duplicates are extra copies in the same place; each must be
explained by a retry after publishing: the record was delivered more than once, or a call carrying
it landed and its answer was lost.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pigeonhole import constants as c
from pigeonhole.naming import MAX_RECEIVE_COUNT
from pigeonhole_tools.local.samples import producer_id
from pigeonhole_tools.reliability.injection import LostResponse
from pigeonhole_tools.reliability.workload import WorkEvent

Where = Literal["output", "review", "quarantine", "dlq"]
PLACES: tuple[Where, ...] = ("output", "review", "quarantine", "dlq")


@dataclass
class Sent:
    """One event and how the system took it in (or why it refused it at the door)."""

    event: WorkEvent
    message_id: str | None = None
    bus_event_id: str | None = None
    rejected: str | None = None


@dataclass(frozen=True)
class Landing:
    where: Where
    message_id: str
    body: str


class KeyResolver:
    """Event key of a record, a landing or a reference: message id first, then the producer's id."""

    def __init__(self, sent: Sequence[Sent]) -> None:
        entered = [s for s in sent if s.rejected is None]
        self.keys = {s.event.key for s in entered}
        self.by_message = {s.message_id: s.event.key for s in entered if s.message_id}

    def ref(self, value: str | None) -> str | None:
        if not value:
            return None
        if value in self.by_message:
            return self.by_message[value]
        return value if value in self.keys else None

    def record(self, message_id: str, body: str | None) -> str | None:
        return self.ref(message_id) or self.ref(producer_id(body))

    def landing(self, landing: Landing) -> str | None:
        key = self.ref(landing.message_id)
        if key is not None:
            return key
        try:
            doc: Any = json.loads(landing.body)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            if doc.get("schema") == c.QUARANTINE_SCHEMA:
                body = doc.get("body")
                return (
                    self.ref(doc.get("message_id"))
                    or self.ref(doc.get("event_id"))
                    or self.ref(producer_id(body if isinstance(body, str) else None))
                )
            if isinstance(doc.get("detail"), dict):  # an EventBridge envelope (output sink, rule DLQs)
                return self.ref(doc["detail"].get("id"))
            if isinstance(doc.get("id"), str):  # a review message
                return self.ref(doc["id"])
        return None


@dataclass
class WindowTotals:
    """Summed window counters, and per window the counters and the drift report read back from DynamoDB."""

    n: int = 0
    rev: int = 0
    q: int = 0
    nl: int = 0
    windows: dict[str, dict[str, int]] = field(default_factory=dict)  # start -> {n, nl}
    reports: dict[str, dict[str, int]] = field(default_factory=dict)  # start -> {n, labelled}
    # Each counted unit (digest of its dedup key) -> (window, predicted class or -1, review byte) per window
    # holding it: more than one entry is a double count across windows. ``versions``: model versions seen.
    units: dict[bytes, list[tuple[str, int, int]]] = field(default_factory=dict)
    versions: set[str] = field(default_factory=set)

    def counted(self, dedup_keys: Iterable[str]) -> list[tuple[str, int, int]]:
        """Where the units of these dedup keys are counted (any copy, any window)."""
        from pigeonhole.drift import batches

        return [where for k in dedup_keys for where in self.units.get(batches.digest(k), [])]


@dataclass
class Accounting:
    entered: int
    places: dict[str, Counter[Where]]  # key -> copies per place
    receives: Counter[str]
    kinds: dict[str, str]
    strays: int
    explained_by_lost: set[str]
    reasons: dict[str, list[str]] = field(default_factory=dict)  # key -> quarantine reason codes seen

    def anomalies(self, limit: int = 20) -> list[dict[str, Any]]:
        """The events behind any broken invariant, with what is known about them (for the report)."""
        keys = sorted(
            set(self.lost)
            | set(self.split)
            | set(self.unexpected_dead_letters)
            | set(self.misrouted)
            | set(self.poison_misplaced)
        )
        return [
            {
                "key": k,
                "kind": self.kinds.get(k),
                "places": dict(self.places[k]),
                "receives": self.receives[k],
                "quarantine_reasons": self.reasons.get(k, []),
            }
            for k in keys[:limit]
        ]

    @property
    def lost(self) -> list[str]:
        return sorted(k for k, v in self.places.items() if not v)

    @property
    def split(self) -> list[str]:
        """Events that landed in more than one kind of place (the invariant is exactly one)."""
        return sorted(k for k, v in self.places.items() if len(v) > 1)

    @property
    def fault_dead_letters(self) -> list[str]:
        """Good events dead-lettered after maxReceiveCount deliveries that all failed (faults): redrivable."""
        return sorted(
            k for k in self.keys_in("dlq") if self.kinds.get(k) != "poison" and self.receives[k] == MAX_RECEIVE_COUNT
        )

    @property
    def unexplained_split(self) -> list[str]:
        """Events in more than one kind of place, other than those published on an earlier delivery and then
        dead-lettered (their final place is the DLQ; the earlier copies are duplicates after a retry)."""
        dead = set(self.fault_dead_letters)
        return [k for k in self.split if k not in dead]

    @property
    def duplicated(self) -> dict[str, int]:
        """Extra copies per event (same place more than once)."""
        return {k: sum(n - 1 for n in v.values()) for k, v in self.places.items() if sum(v.values()) > len(v)}

    def duplicates_in(self, where: Where) -> int:
        return sum(v[where] - 1 for v in self.places.values() if v[where] > 1)

    @property
    def unexplained_duplicates(self) -> list[str]:
        """Copies with no retry behind them: neither redelivered nor carried by a call whose answer was lost."""
        return sorted(k for k in self.duplicated if self.receives[k] <= 1 and k not in self.explained_by_lost)

    def place_of(self, key: str) -> Where | None:
        v = self.places[key]
        return next(iter(v)) if len(v) == 1 else None

    def keys_in(self, where: Where) -> list[str]:
        return sorted(k for k, v in self.places.items() if v[where])

    @property
    def poison_keys(self) -> list[str]:
        return sorted(k for k, kind in self.kinds.items() if kind == "poison")

    @property
    def poison_misplaced(self) -> list[str]:
        """Poison events not in the DLQ alone, or not received exactly maxReceiveCount times."""
        return [k for k in self.poison_keys if set(self.places[k]) != {"dlq"} or self.receives[k] != MAX_RECEIVE_COUNT]

    @property
    def unexpected_dead_letters(self) -> list[str]:
        """Non-poison events in a DLQ that were not delivered exactly maxReceiveCount times."""
        dead = set(self.fault_dead_letters)
        return sorted(k for k in self.keys_in("dlq") if self.kinds.get(k) != "poison" and k not in dead)

    @property
    def misrouted(self) -> list[str]:
        """Contract breakers anywhere but quarantine, or good events in quarantine. A contract breaker whose
        deliveries all failed by faults may also sit in the DLQ (quarantined on an earlier delivery, or never):
        like a good event's, that dead letter is explained by the faults, not by its content."""
        out = []
        dead = set(self.fault_dead_letters)
        for k, v in self.places.items():
            kind = self.kinds.get(k)
            allowed = {"quarantine", "dlq"} if k in dead else {"quarantine"}
            if (kind == "invalid" and set(v) - allowed) or (kind in ("valid", "off_topic") and v["quarantine"]):
                out.append(k)
        return sorted(out)

    def expected_windows(self, totals: WindowTotals | None = None) -> dict[str, int]:
        """What the window counters must hold: each distinct event counted once in its kind.

        A dead-lettered event is counted only if a counting write of an earlier delivery landed (its answer
        lost, so the record failed, and every later delivery failed too): its unit is then in the windows,
        once, and it must have been published (output, review or quarantine) before the DLQ; see
        :meth:`dead_letter_miscounts`. Without ``totals`` dead-lettered events are expected uncounted."""
        counted = [k for k in self.places if self.kinds.get(k) != "poison" and not self.places[k]["dlq"]]
        classified = [k for k in counted if self.places[k]["output"] or self.places[k]["review"]]
        expected = {
            "n": len(classified),
            "rev": sum(1 for k in classified if self.places[k]["review"]),
            "q": sum(1 for k in counted if self.places[k]["quarantine"]),
        }
        for _, predicted, review in self.dead_letters_counted(totals).values():
            expected["n" if predicted >= 0 else "q"] += 1
            expected["rev"] += int(predicted >= 0 and review > 0)
        return expected

    def dead_letters_counted(self, totals: WindowTotals | None) -> dict[str, tuple[str, int, int]]:
        """Dead-lettered events whose unit is in the windows (found by the digest of their event id)."""
        if totals is None:
            return {}
        out: dict[str, tuple[str, int, int]] = {}
        for k in self.keys_in("dlq"):
            found = totals.counted(_dedup_keys(totals.versions, k))
            if found:
                out[k] = found[0]
        return out

    def dead_letter_miscounts(self, totals: WindowTotals) -> list[str]:
        """Dead-lettered events counted although never published, or counted more than once."""
        out = []
        for k in self.dead_letters_counted(totals):
            published = any(self.places[k][w] for w in ("output", "review", "quarantine"))
            if not published or len(totals.counted(_dedup_keys(totals.versions, k))) > 1:
                out.append(k)
        return sorted(out)

    def window_mismatches(self, totals: WindowTotals) -> dict[str, tuple[int, int]]:
        expected = self.expected_windows(totals)
        got = {"n": totals.n, "rev": totals.rev, "q": totals.q}
        return {k: (expected[k], got[k]) for k in expected if expected[k] != got[k]}


def _dedup_keys(versions: Iterable[str], event_id: str) -> list[str]:
    """The recorder's dedup keys an event with this id can have (classified, or quarantined with its id)."""
    from pigeonhole.drift import layout as keys

    return [k for v in sorted(versions) for k in (keys.prediction_pk(v, event_id), keys.quarantine_pk(v, event_id, ""))]


def units_in_several_windows(totals: WindowTotals) -> int:
    """Units counted in more than one window: a double count no per-window merge can remove."""
    return sum(1 for where in totals.units.values() if len({w for w, _, _ in where}) > 1)


def account(
    sent: Sequence[Sent],
    landings: Iterable[Landing],
    receives: Mapping[str, int],
    lost: Sequence[LostResponse],
    resolver: KeyResolver | None = None,
) -> Accounting:
    resolver = resolver or KeyResolver(sent)
    entered = [s for s in sent if s.rejected is None]
    places: dict[str, Counter[Where]] = {s.event.key: Counter() for s in entered}
    strays = 0
    reasons: dict[str, list[str]] = defaultdict(list)
    for landing in landings:
        key = resolver.landing(landing)
        if key is None:
            strays += 1
            continue
        places[key][landing.where] += 1
        if landing.where == "quarantine":
            reasons[key].append(_reason_code(landing.body))
    explained: set[str] = set()
    for response in lost:
        explained.update(k for k in (resolver.ref(r) for r in response.refs) if k is not None)
    return Accounting(
        entered=len(entered),
        places=places,
        receives=Counter(receives),
        kinds={s.event.key: s.event.kind for s in entered},
        strays=strays,
        explained_by_lost=explained,
        reasons=dict(reasons),
    )


def _reason_code(body: str) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return "?"
    reason = doc.get("reason") if isinstance(doc, dict) else None
    return str(reason.get("code", "?")) if isinstance(reason, dict) else "?"


def label_totals(labels: Mapping[str, str]) -> int:
    """Distinct labelled events (the first label of an event wins; duplicates count once)."""
    return len(labels)


def merge_windows(items: Iterable[Mapping[str, Any]]) -> WindowTotals:
    """Window counters from a table scan: batch items (each unit once per window, as the drift function
    merges them), window items (labels) and drift report items; the drift function's stored merges
    (``C#``) are derived from the batch items and skipped."""
    from pigeonhole.drift import batches
    from pigeonhole.drift import layout as keys
    from pigeonhole.drift.compaction import COMPACTED_PREFIX

    totals = WindowTotals()
    windows: dict[str, Counter[str]] = defaultdict(Counter)
    batch_items: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for item in items:
        pk, sk = str(item.get(keys.PK, "")), str(item.get(keys.SK, ""))
        parsed = batches.parse_batch_pk(pk)
        if parsed is not None:
            totals.versions.add(parsed[0])
            batch_items[batches.window_of_sk(sk)].append(item)
            continue
        if not pk.startswith("W#") or sk.startswith(COMPACTED_PREFIX):
            continue
        start = str(item.get(keys.ATTR_WINDOW_START, ""))
        if sk.startswith(keys.REPORT_PREFIX):
            totals.reports[start] = {"n": int(item.get("n", 0)), "labelled": int(item.get("labelled", 0))}
            continue
        for name in ("n", "rev", "q", "nl"):
            windows[start][name] += int(item.get(name, 0))
    for start, members in batch_items.items():
        records = batches.merged_records(members)
        windows[start].update(batches.totals_from_records(records))
        for r in records if records is not None else ():
            # numpy's fixed-width bytes drop trailing NULs on the way out: pad back to the digest's length.
            digest = bytes(r["id"]).ljust(batches.DIGEST_BYTES, b"\0")
            totals.units.setdefault(digest, []).append((start, int(r["pred"]), int(r["rev"])))
    for start, counts in windows.items():
        totals.n += counts["n"]
        totals.rev += counts["rev"]
        totals.q += counts["q"]
        totals.nl += counts["nl"]
        totals.windows[start] = {"n": counts["n"], "nl": counts["nl"]}
    return totals


def report_mismatches(totals: WindowTotals) -> dict[str, dict[str, Any]]:
    """Windows with events whose drift report is missing or disagrees with the counters."""
    out: dict[str, dict[str, Any]] = {}
    for start, counts in sorted(totals.windows.items()):
        if counts["n"] == 0:
            continue
        report = totals.reports.get(start)
        if report is None or report["n"] != counts["n"] or report["labelled"] != counts["nl"]:
            out[start] = {"window": counts, "report": report}
    return out
