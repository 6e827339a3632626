"""Count AWS calls and the units AWS bills for them, from botocore's own event hooks.

Why hooks, not estimates: every client built from a session shares the session's event emitter, so a
handler registered once on ``before-parameter-build`` (to keep the call's parameters) and on
``after-call`` (to see the response) sees every call Pigeonhole makes, through any adapter, with no
change to Pigeonhole's code. What the bench reports as "requests per event" is what these counted.

Billed units, per AWS's published billing rules (docs/benchmarks.md cites them):
- SQS: one request per call, and one per further 64 KiB chunk of the payload (a batch of up to 10
  entries is one request while its payload stays within 64 KiB).
- EventBridge ``PutEvents``: one event per entry per 64 KiB chunk of that entry.
- DynamoDB writes: one WCU per KiB of the item (rounded up, per item), twice that inside
  ``TransactWriteItems``. The item size is computed from the attribute names and values (DynamoDB's
  item-size rules) of the item as stored after the write, read back by ``item_reader`` when given (an
  ``UpdateItem`` bills the larger of the item before and after), else of what the request sent.
  moto does not compute ``ConsumedCapacity`` from sizes, so it is not used.
- DynamoDB reads: 4 KiB units, halved for eventually consistent reads (rounded up per item; per
  response for ``Query``).
- CloudWatch ``PutMetricData``: one request per call.
"""

from __future__ import annotations

import copy
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

SQS_CHUNK = 64 * 1024
EVENTS_CHUNK = 64 * 1024
WCU_BYTES = 1024
RCU_BYTES = 4 * 1024
_PARAMS_KEY = "pigeonhole_bench_params"

# (table, an item holding at least its key, in DynamoDB JSON) -> the stored item, or None when there is none.
ItemReader = Callable[[str, Mapping[str, Any]], Mapping[str, Any] | None]
# (table, the written item or key, in DynamoDB JSON) -> what kind of item it is (None: not broken down).
ItemKind = Callable[[str, Mapping[str, Any]], str | None]


def _number_size(text: str) -> int:
    """DynamoDB stores a number as up to 38 significant digits: about one byte per two digits, plus one."""
    digits = text.lstrip("-").replace(".", "").lstrip("0") or "0"
    if "e" in digits.lower():
        digits = str(Decimal(text).normalize()).lstrip("-").replace(".", "")
    return (len(digits) + 1) // 2 + 1


def attribute_value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one DynamoDB-JSON attribute value, by DynamoDB's item-size rules."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode("utf-8"))
    if kind == "N":
        return _number_size(str(inner))
    if kind == "B":
        return len(inner) if isinstance(inner, bytes | bytearray) else len(str(inner))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode("utf-8")) for s in inner)
    if kind == "NS":
        return sum(_number_size(str(n)) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "L":
        return 3 + sum(1 + attribute_value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + 1 + attribute_value_size(v) for k, v in inner.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: Mapping[str, Any]) -> int:
    """Bytes of a DynamoDB-JSON item: every attribute name plus its value."""
    return sum(len(name.encode("utf-8")) + attribute_value_size(value) for name, value in item.items())


def write_units(size_bytes: int, transactional: bool = False) -> int:
    """WCU of one item write: per started KiB (at least one), doubled in a transaction."""
    units = max(1, math.ceil(size_bytes / WCU_BYTES))
    return 2 * units if transactional else units


def read_units(size_bytes: int, consistent: bool = False) -> float:
    """RCU of a read: per started 4 KiB (at least one), halved when eventually consistent."""
    units = max(1, math.ceil(size_bytes / RCU_BYTES))
    return float(units) if consistent else units / 2


def chunks(size_bytes: int, chunk: int) -> int:
    """Billed units of a payload billed per started chunk (at least one)."""
    return max(1, math.ceil(size_bytes / chunk))


def _sqs_payload(operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> int:
    def message_bytes(entry: Mapping[str, Any]) -> int:
        attrs = entry.get("MessageAttributes") or {}
        return len(str(entry.get("MessageBody", entry.get("Body", ""))).encode("utf-8")) + len(
            json.dumps(attrs, default=str)
        ) * bool(attrs)

    if operation == "SendMessage":
        return message_bytes(params)
    if operation == "SendMessageBatch":
        return sum(message_bytes(e) for e in params.get("Entries", []))
    if operation == "ReceiveMessage":
        return sum(message_bytes(m) for m in parsed.get("Messages", []))
    return 0


def event_entry_size(entry: Mapping[str, Any]) -> int:
    """EventBridge's size of a PutEvents entry: Detail, DetailType, Source, Resources, 14 bytes for Time."""
    size = sum(len(str(entry.get(k, "")).encode("utf-8")) for k in ("Detail", "DetailType", "Source"))
    size += sum(len(r.encode("utf-8")) for r in entry.get("Resources", []) or [])
    return size + (14 if entry.get("Time") is not None else 0)


@dataclass
class CallRecord:
    """One counted call (kept only when ``keep_calls`` is set, for tests and debugging)."""

    service: str
    operation: str
    billed: dict[str, float]


@dataclass
class RequestCounter:
    """Counts calls (``service.Operation``) and billed units over every session it is attached to.

    ``item_reader`` reads a DynamoDB item back after a write (with a client that is *not* attached), so
    the billed size is the stored item's; without it the size of what the request sent is used.
    ``item_kind`` names each written item's kind (e.g. a window's batch item, its merge): its write units
    are then also billed under ``dynamodb_wcu_kind[<kind>]``, and the items counted under
    ``dynamodb_items_kind[<kind>]``.
    """

    item_reader: ItemReader | None = None
    item_kind: ItemKind | None = None
    keep_calls: bool = False
    calls: Counter[str] = field(default_factory=Counter)
    billed: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    records: list[CallRecord] = field(default_factory=list)

    def attach(self, target: Any) -> None:
        """Register on a boto3 ``Session`` (every client made from it later is counted) or on one client."""
        if hasattr(target, "meta") and hasattr(target.meta, "events"):
            emitter = target.meta.events  # a client
        elif hasattr(target, "events"):
            emitter = target.events  # a boto3 Session
        else:
            emitter = target.get_component("event_emitter")  # a botocore Session
        emitter.register("before-parameter-build", self._keep_params)
        emitter.register("after-call", self._count)

    def reset(self) -> None:
        self.calls.clear()
        self.billed.clear()
        self.records.clear()

    def snapshot(self) -> dict[str, dict[str, float]]:
        return {"calls": {k: float(v) for k, v in self.calls.items()}, "billed": dict(self.billed)}

    # -- hooks ------------------------------------------------------------------------------------
    def _keep_params(self, params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[_PARAMS_KEY] = copy.deepcopy(dict(params))

    def _count(
        self, model: Any, context: Mapping[str, Any], parsed: Mapping[str, Any], http_response: Any, **_: Any
    ) -> None:
        service = model.service_model.service_name
        operation = model.name
        status = getattr(http_response, "status_code", 200)
        params = context.get(_PARAMS_KEY, {})
        billed = self.billed_units(service, operation, params, parsed or {})
        if status >= 300:
            self.calls[f"{service}.{operation}:error"] += 1
        self.calls[f"{service}.{operation}"] += 1
        for key, value in billed.items():
            self.billed[key] += value
        if self.keep_calls:
            self.records.append(CallRecord(service, operation, billed))

    # -- billing rules ----------------------------------------------------------------------------
    def billed_units(
        self, service: str, operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any]
    ) -> dict[str, float]:
        """The units AWS bills for one call (a failed call is still a billed request where AWS bills it)."""
        if service == "sqs":
            return {"sqs_requests": chunks(_sqs_payload(operation, params, parsed), SQS_CHUNK)}
        if service == "events" and operation == "PutEvents":
            entries = params.get("Entries", [])
            return {"eventbridge_events": sum(chunks(event_entry_size(e), EVENTS_CHUNK) for e in entries)}
        if service == "monitoring" and operation == "PutMetricData":
            return {"cloudwatch_put_metric_data": 1}
        if service == "s3":
            return {f"s3_{operation}": 1}
        if service == "dynamodb":
            return self._dynamodb(operation, params, parsed)
        return {}

    def _stored_size(self, table: str, key: Mapping[str, Any], sent: Mapping[str, Any]) -> int:
        sent_size = item_size(sent)
        if self.item_reader is None:
            return sent_size
        stored = self.item_reader(table, key)
        return max(sent_size, item_size(stored) if stored else 0)

    def _write(self, kind: str, body: Mapping[str, Any]) -> tuple[str, int]:
        table = body["TableName"]
        if kind == "Put":
            item = body["Item"]
            return table, self._stored_size(table, item, item)
        key = body["Key"]
        if kind == "Update":
            values = body.get("ExpressionAttributeValues", {}) or {}
            names = body.get("ExpressionAttributeNames", {}) or {}
            sent = {**key, **{n: {"NULL": True} for n in names.values()}}
            sent.update({f"v{i}": v for i, v in enumerate(values.values())})
            return table, self._stored_size(table, key, sent)
        return table, self._stored_size(table, key, key)  # Delete, ConditionCheck: the item's size

    def _dynamodb(self, operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> dict[str, float]:
        """WCU and RCU in total and per table (``dynamodb_wcu[<table>]``), so each feature's table is priced apart;
        units written inside ``TransactWriteItems`` are also kept per table (``dynamodb_wcu_in_transactions[...]``).

        A failed conditional write or a cancelled transaction still consumes write capacity: counted too.
        """
        kinds: defaultdict[str, float] = defaultdict(float)
        wcu = self._write_units(operation, params, parsed, kinds)
        rcu = _read_units(operation, params, parsed)
        out: dict[str, float] = {}
        for name, units in (("dynamodb_wcu", wcu), ("dynamodb_rcu", rcu)):
            if units:
                out[name] = float(sum(units.values()))
                out.update({f"{name}[{table}]": float(v) for table, v in units.items()})
        out.update(kinds)
        if operation == "TransactWriteItems":  # written together: which tables' units one transaction needed
            out.update({f"dynamodb_wcu_in_transactions[{table}]": float(v) for table, v in wcu.items()})
        return out

    def _write_units(
        self, operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any], kinds: defaultdict[str, float]
    ) -> defaultdict[str, float]:
        wcu: defaultdict[str, float] = defaultdict(float)

        def bill(table: str, item: Mapping[str, Any], units: int) -> None:
            wcu[table] += units
            kind = self.item_kind(table, item) if self.item_kind is not None else None
            if kind is not None:
                kinds[f"dynamodb_wcu_kind[{kind}]"] += units
                kinds[f"dynamodb_items_kind[{kind}]"] += 1

        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            table, size = self._write(operation.removesuffix("Item"), params)
            bill(table, params.get("Item") or params.get("Key", {}), write_units(size))
        elif operation == "TransactWriteItems":
            for entry in params.get("TransactItems", []):
                ((kind, body),) = entry.items()
                table, size = self._write(kind, body)
                bill(table, body.get("Item") or body.get("Key", {}), write_units(size, transactional=True))
        elif operation == "BatchWriteItem":
            unprocessed = parsed.get("UnprocessedItems", {}) or {}
            for table, requests in params.get("RequestItems", {}).items():
                done = len(requests) - len(unprocessed.get(table, []))
                for request in requests[:done]:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        bill(table, item, write_units(self._stored_size(table, item, item)))
                    else:
                        key = request["DeleteRequest"]["Key"]
                        bill(table, key, write_units(item_size(key)))
        return wcu


def _read_units(operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> defaultdict[str, float]:
    rcu: defaultdict[str, float] = defaultdict(float)
    if operation == "GetItem":
        size = item_size(parsed.get("Item", {}) or {})
        rcu[params["TableName"]] += read_units(size, bool(params.get("ConsistentRead")))
    elif operation == "BatchGetItem":
        consistent = {t: bool(r.get("ConsistentRead")) for t, r in params.get("RequestItems", {}).items()}
        for table, items in (parsed.get("Responses", {}) or {}).items():
            rcu[table] += sum(read_units(item_size(i), consistent.get(table, False)) for i in items)
    elif operation in ("Query", "Scan"):
        size = sum(item_size(i) for i in parsed.get("Items", []) or [])
        rcu[params["TableName"]] += read_units(size, bool(params.get("ConsistentRead")))
    return rcu
