"""DynamoDB for monitoring: exactly-once counting transactions, consistent reads, idempotent puts.

The classifier's window accounting uses only the plain puts (:meth:`DynamoDBAdapter.put`,
:meth:`DynamoDBAdapter.put_all`: one batch item per window, see :mod:`pigeonhole.drift.batches`); the
feedback function's label counting uses the transactions described next.

The one idea that makes window counting exact under at-least-once delivery lives here
(:meth:`DynamoDBAdapter.commit_once`): each counted unit (an event, a label) owns a *marker* item
that may be created only once (``attribute_not_exists``), and the marker puts travel in the same
``TransactWriteItems`` as the ``ADD`` of the counters they contribute to. Either both land or
neither does, so a unit is counted exactly when its marker exists. When the transaction is cancelled
because some markers already exist (a redelivery, a duplicate), those units are dropped, the counters
are re-aggregated from the rest and the transaction is sent again.

The adapter takes an injected low-level client and speaks plain Python values: ``float`` becomes
``Decimal`` on the way in (boto3 rejects float); numbers come back as ``Decimal`` (convert before
arithmetic).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from pigeonhole.adapters.dynamodb_values import check_item, deserialize_item, serialize, serialize_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# re-exported: callers import them from here
__all__ = ["check_item", "deserialize_item", "serialize", "serialize_item"]

MAX_TRANSACT_ITEMS = 100  # TransactWriteItems limit
MAX_BATCH_GET_KEYS = 100  # BatchGetItem limit
DEFAULT_MARKERS_PER_TRANSACTION = 50  # + at most one counter update per marker stays within 100 items

# Cancellation reasons (per item) and error codes (per call) worth another attempt after a pause.
RETRYABLE_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)
RETRYABLE_ERRORS = frozenset(
    {
        "TransactionInProgressException",
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


class IncompleteWriteError(Exception):
    """A plain write that did not land in time (out of time, items left unprocessed)."""


@dataclass(frozen=True)
class Marker:
    """A put that may happen once per ``item[key_attribute]``: the proof a unit was counted."""

    table: str
    item: Mapping[str, Any]
    key_attribute: str = "pk"

    @property
    def key(self) -> str:
        return str(self.item[self.key_attribute])


@dataclass(frozen=True)
class CounterUpdate:
    """One ``UpdateItem``: ``ADD`` increments, ``SET`` values, ``SET`` values only if absent (e.g. a TTL)."""

    table: str
    key: Mapping[str, str]
    add: Mapping[str, int | float]
    set: Mapping[str, Any] = field(default_factory=dict)
    set_if_absent: Mapping[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.add or self.set or self.set_if_absent)

    def expression(self) -> tuple[str, dict[str, str], dict[str, Any]]:
        """UpdateExpression with placeholders for every name (counter names may be reserved words)."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        adds: list[str] = []
        sets: list[str] = []
        for i, (name, inc) in enumerate(sorted(self.add.items())):
            names[f"#a{i}"], values[f":a{i}"] = name, serialize(inc)
            adds.append(f"#a{i} :a{i}")
        for i, (name, value) in enumerate(sorted(self.set.items())):
            names[f"#s{i}"], values[f":s{i}"] = name, serialize(value)
            sets.append(f"#s{i} = :s{i}")
        for i, (name, value) in enumerate(sorted(self.set_if_absent.items())):
            names[f"#n{i}"], values[f":n{i}"] = name, serialize(value)
            sets.append(f"#n{i} = if_not_exists(#n{i}, :n{i})")
        parts = []
        if adds:
            parts.append("ADD " + ", ".join(adds))
        if sets:
            parts.append("SET " + ", ".join(sets))
        return " ".join(parts), names, values


@dataclass
class CommitResult:
    """Per marker index: counted now, counted before (with the existing marker, when returned), or failed."""

    committed: set[int] = field(default_factory=set)
    duplicates: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    transactions: int = 0  # TransactWriteItems calls sent (for cost accounting and tests)


BuildUpdates = Callable[[Sequence[int]], Sequence[CounterUpdate]]


class DynamoDBAdapter:
    def __init__(
        self,
        client: DynamoDBClient,
        *,
        max_attempts: int = 6,
        base_delay: float = 0.025,
        max_delay: float = 1.0,
        markers_per_transaction: int = DEFAULT_MARKERS_PER_TRANSACTION,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= markers_per_transaction < MAX_TRANSACT_ITEMS:
            raise ValueError(f"markers_per_transaction must be within 1..{MAX_TRANSACT_ITEMS - 1}")
        self._client = client
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._chunk = markers_per_transaction
        self._sleep = sleep
        self._rng = rng or random.Random()  # jitter, not crypto
        self._monotonic = monotonic

    @property
    def client(self) -> DynamoDBClient:
        return self._client

    # -- exactly-once counting -----------------------------------------------------------------
    def commit_once(
        self, markers: Sequence[Marker], build_updates: BuildUpdates, deadline: float | None = None
    ) -> CommitResult:
        """Create each marker and apply the counters of exactly the units whose marker is new.

        ``build_updates(indices)`` aggregates the counters of the given marker indices (it is called
        again with fewer indices after duplicates drop out, so it must be a pure function of them).
        Markers must have distinct keys (deduplicate in memory first). Chunks of
        ``markers_per_transaction`` markers commit independently: each is atomic on its own, and a
        crash between chunks is repaired by redelivery because committed markers make it a no-op.
        ``deadline`` (a ``monotonic`` time): no chunk starts and no back-off sleeps past it; the markers
        left are reported failed, so the caller returns them for SQS to deliver again in time.
        """
        keys = [(m.table, m.key) for m in markers]
        if len(set(keys)) != len(keys):
            raise ValueError("markers must have distinct keys; drop in-batch duplicates before committing")
        result = CommitResult()
        indices = list(range(len(markers)))
        for start in range(0, len(indices), self._chunk):
            chunk = indices[start : start + self._chunk]
            if deadline is not None and self._monotonic() >= deadline:
                self._fail(result, chunk, "out of time before the transaction")
                continue
            self._commit_chunk(markers, chunk, build_updates, result, deadline)
        return result

    def _commit_chunk(
        self,
        markers: Sequence[Marker],
        remaining: list[int],
        build_updates: BuildUpdates,
        result: CommitResult,
        deadline: float | None = None,
    ) -> None:
        attempt = 0
        while remaining:
            updates = [u for u in build_updates(remaining) if not u.empty]
            items = [self._put_item(markers[i]) for i in remaining] + [self._update_item(u) for u in updates]
            if len(items) > MAX_TRANSACT_ITEMS:
                raise ValueError(f"{len(items)} items exceed the {MAX_TRANSACT_ITEMS}-item transaction limit")
            result.transactions += 1
            try:
                self._client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", ""))
                if code == "TransactionCanceledException":
                    reasons: list[dict[str, Any]] = list(exc.response.get("CancellationReasons") or [])  # type: ignore[arg-type]
                    marker_reasons = reasons[: len(remaining)]
                    already = [
                        (i, r)
                        for i, r in zip(remaining, marker_reasons, strict=False)
                        if r.get("Code") == "ConditionalCheckFailed"
                    ]
                    if already:
                        # Counted before (redelivery / duplicate): drop them, re-aggregate, send again. This
                        # shrinks `remaining`, so it cannot loop forever and does not use up an attempt.
                        for i, reason in already:
                            old = reason.get("Item")
                            result.duplicates[i] = deserialize_item(old) if isinstance(old, Mapping) else None
                        dropped = {i for i, _ in already}
                        remaining = [i for i in remaining if i not in dropped]
                        continue
                    codes = {str(r.get("Code")) for r in reasons} - {"None"}
                    if codes and codes <= RETRYABLE_REASONS and attempt + 1 < self._max_attempts:
                        attempt += 1
                        if not self._backoff(attempt, deadline):
                            self._fail(result, remaining, f"out of time retrying: {', '.join(sorted(codes))}")
                            return
                        continue
                    why = ", ".join(sorted(codes)) or str(error.get("Message", "no reasons given"))
                    self._fail(result, remaining, f"transaction cancelled: {why}")
                    return
                if code in RETRYABLE_ERRORS and attempt + 1 < self._max_attempts:
                    attempt += 1
                    if not self._backoff(attempt, deadline):
                        self._fail(result, remaining, f"out of time retrying: {code}")
                        return
                    continue
                self._fail(result, remaining, f"TransactWriteItems failed: {code}: {error.get('Message', '')}")
                return
            except BotoCoreError as exc:
                # Unknown outcome (timeout, connection reset): report failure; the redelivery is safe
                # because a transaction that did land left its markers behind.
                self._fail(result, remaining, f"TransactWriteItems failed: {exc}")
                return
            result.committed.update(remaining)
            return

    def _fail(self, result: CommitResult, indices: Sequence[int], error: str) -> None:
        for i in indices:
            result.failed[i] = error

    def _backoff(self, attempt: int, deadline: float | None = None) -> bool:
        """Full jitter: concurrent writers that collided on a hot window item spread out.
        False (and no sleep) when the pause would end past ``deadline``."""
        delay = self._rng.uniform(0.0, min(self._max_delay, self._base_delay * 2**attempt))
        if deadline is not None and self._monotonic() + delay >= deadline:
            return False
        self._sleep(delay)
        return True

    @staticmethod
    def _put_item(marker: Marker) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": marker.table,
                "Item": serialize_item(marker.item),
                "ConditionExpression": "attribute_not_exists(#k)",
                "ExpressionAttributeNames": {"#k": marker.key_attribute},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    @staticmethod
    def _update_item(update: CounterUpdate) -> dict[str, Any]:
        expression, names, values = update.expression()
        return {
            "Update": {
                "TableName": update.table,
                "Key": serialize_item(update.key),
                "UpdateExpression": expression,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    # -- plain reads and writes ----------------------------------------------------------------
    def _pause_or_raise(self, exc: ClientError, attempt: int, deadline: float | None, operation: str) -> None:
        """After failed ``attempt``: back off when the error is retryable and attempts and time remain; else
        re-raise it (or, when the pause would end past ``deadline``, raise ``IncompleteWriteError``)."""
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code not in RETRYABLE_ERRORS or attempt >= self._max_attempts:
            raise exc
        if not self._backoff(attempt, deadline):
            raise IncompleteWriteError(f"out of time retrying {operation}: {code}") from exc

    def put(self, table: str, item: Mapping[str, Any], deadline: float | None = None) -> None:
        """An unconditional (idempotent) put, retried with back-off on throttling and server errors.
        Raises on anything else, or when the next pause would end past ``deadline`` (a ``monotonic`` time)."""
        attempt = 0
        while True:
            if deadline is not None and self._monotonic() >= deadline:
                raise IncompleteWriteError("out of time before PutItem")
            try:
                self._client.put_item(TableName=table, Item=serialize_item(item))
                return
            except ClientError as exc:
                attempt += 1
                self._pause_or_raise(exc, attempt, deadline, "PutItem")

    def put_all(self, table: str, items: Sequence[Mapping[str, Any]], deadline: float | None = None) -> None:
        """Unconditional puts in ``BatchWriteItem`` calls of 25, unprocessed items retried; raises if
        some are still unprocessed after ``max_attempts`` or past ``deadline``."""
        for start in range(0, len(items), 25):
            request: dict[str, Any] = {
                table: [{"PutRequest": {"Item": serialize_item(i)}} for i in items[start : start + 25]]
            }
            attempt = 0
            while request:
                if deadline is not None and self._monotonic() >= deadline:
                    raise IncompleteWriteError("out of time before BatchWriteItem")
                try:
                    page = self._client.batch_write_item(RequestItems=request)
                except ClientError as exc:
                    attempt += 1
                    self._pause_or_raise(exc, attempt, deadline, "BatchWriteItem")
                    continue
                request = dict(page.get("UnprocessedItems") or {})
                if request:
                    attempt += 1
                    if attempt >= self._max_attempts or not self._backoff(attempt, deadline):
                        raise IncompleteWriteError(f"BatchWriteItem left items unprocessed after {attempt} attempts")

    def put_if_larger(
        self, table: str, item: Mapping[str, Any], order: Sequence[str], key_attribute: str = "sk"
    ) -> bool:
        """Put (replacing) unless an item exists whose ``order`` attributes, compared as a tuple, are >= the
        new ones: concurrent writers of a monotonic summary converge on the largest and never roll back."""
        names = {"#k": key_attribute, **{f"#o{i}": a for i, a in enumerate(order)}}
        values = {f":o{i}": serialize(item[a]) for i, a in enumerate(order)}
        clauses = []
        for i in range(len(order)):
            equal = [f"#o{j} = :o{j}" for j in range(i)]
            clauses.append("(" + " AND ".join([*equal, f"#o{i} < :o{i}"]) + ")")
        condition = "attribute_not_exists(#k) OR " + " OR ".join(clauses)
        try:
            self._client.put_item(
                TableName=table,
                Item=serialize_item(item),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def update(self, update: CounterUpdate) -> None:
        """A single non-transactional update (counters that need no exactly-once guarantee)."""
        if update.empty:
            return
        expression, names, values = update.expression()
        self._client.update_item(
            TableName=update.table,
            Key=serialize_item(update.key),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def put_if_absent(self, table: str, item: Mapping[str, Any], key_attribute: str = "sk") -> bool:
        """Put unless an item with this key exists; False if it did (someone else wrote it first)."""
        try:
            self._client.put_item(
                TableName=table,
                Item=serialize_item(item),
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": key_attribute},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put_if_greater(self, table: str, item: Mapping[str, Any], attribute: str, key_attribute: str = "sk") -> bool:
        """Put (replacing the whole item) unless one exists whose ``attribute`` is >= the new one: an
        idempotent overwrite that concurrent writers cannot roll back to a smaller value."""
        try:
            self._client.put_item(
                TableName=table,
                Item=serialize_item(item),
                ConditionExpression="attribute_not_exists(#k) OR attribute_not_exists(#g) OR #g < :g",
                ExpressionAttributeNames={"#k": key_attribute, "#g": attribute},
                ExpressionAttributeValues={":g": serialize(item[attribute])},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def set_if_greater(
        self, table: str, key: Mapping[str, str], attribute: str, value: int, values: Mapping[str, Any]
    ) -> bool:
        """SET ``values`` and ``attribute = value`` only if the stored ``attribute`` is absent or smaller:
        a monotonic refresh that concurrent writers cannot roll back."""
        names = {"#g": attribute, **{f"#v{i}": k for i, k in enumerate(sorted(values))}}
        expr_values = {":g": serialize(value), **{f":v{i}": serialize(values[k]) for i, k in enumerate(sorted(values))}}
        sets = ["#g = :g", *(f"#v{i} = :v{i}" for i in range(len(values)))]
        try:
            self._client.update_item(
                TableName=table,
                Key=serialize_item(key),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="attribute_exists(#pk) AND (attribute_not_exists(#g) OR #g < :g)",
                ExpressionAttributeNames={**names, "#pk": next(iter(key))},
                ExpressionAttributeValues=expr_values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def query(
        self,
        table: str,
        pk: str,
        sk_between: tuple[str, str] | None = None,
        *,
        projection: Sequence[str] | None = None,
        consistent: bool = True,
        pk_name: str = "pk",
        sk_name: str = "sk",
    ) -> list[dict[str, Any]]:
        """Every item of a partition (optionally a sort-key range, inclusive), all pages."""
        names = {"#p": pk_name}
        values: dict[str, Any] = {":p": serialize(pk)}
        condition = "#p = :p"
        if sk_between is not None:
            names["#s"] = sk_name
            values[":lo"], values[":hi"] = serialize(sk_between[0]), serialize(sk_between[1])
            condition += " AND #s BETWEEN :lo AND :hi"
        kwargs: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ConsistentRead": consistent,
        }
        if projection:
            for i, attr in enumerate(projection):
                names[f"#x{i}"] = attr
            kwargs["ProjectionExpression"] = ", ".join(f"#x{i}" for i in range(len(projection)))
        kwargs["ExpressionAttributeNames"] = names
        items: list[dict[str, Any]] = []
        while True:
            page = self._client.query(**kwargs)
            items.extend(deserialize_item(i) for i in page.get("Items", []))
            last = page.get("LastEvaluatedKey")
            if not last:
                return items
            kwargs["ExclusiveStartKey"] = last

    def batch_get(
        self, table: str, keys: Sequence[Mapping[str, str]], *, consistent: bool = True, key_attribute: str = "pk"
    ) -> dict[str, dict[str, Any]]:
        """Items by key (``{item[key_attribute]: item}``); missing keys are absent. Retries unprocessed keys."""
        found: dict[str, dict[str, Any]] = {}
        unique = list({tuple(sorted(k.items())): k for k in keys}.values())
        for start in range(0, len(unique), MAX_BATCH_GET_KEYS):
            request: dict[str, Any] = {
                table: {
                    "Keys": [serialize_item(k) for k in unique[start : start + MAX_BATCH_GET_KEYS]],
                    "ConsistentRead": consistent,
                }
            }
            attempt = 0
            while request:
                page = self._client.batch_get_item(RequestItems=request)
                for raw in page.get("Responses", {}).get(table, []):
                    item = deserialize_item(raw)
                    found[str(item[key_attribute])] = item
                request = dict(page.get("UnprocessedKeys") or {})
                if request:
                    attempt += 1
                    if attempt >= self._max_attempts:
                        raise RuntimeError(f"BatchGetItem left keys unprocessed after {attempt} attempts")
                    self._backoff(attempt)
        return found
