"""Speed only, no change in what a client sees: moto's DynamoDB transactions without whole-table copies.

moto snapshots every table a ``TransactWriteItems`` touches (``copy.deepcopy``) so it can roll back
when a condition fails; with the predictions table growing by one marker per event, each transaction
costs O(table) and a 10,000-event run O(n²). Items of one transaction are distinct (moto and DynamoDB
refuse two operations on one item), so no item's condition depends on another item's write: checking
every condition first, then applying only when all pass, gives the same outcome and the same
cancellation reasons without a snapshot. Anything unusual (a duplicate key, a missing table, an
operation moto would refuse) goes to moto's own code path, snapshots included.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator
from typing import Any

_lock = threading.Lock()


class _NoSnapshot:
    """Stands in for the ``copy`` module in moto's DynamoDB backend while a pre-checked transaction applies."""

    def __init__(self) -> None:
        self.active = threading.local()

    def deepcopy(self, obj: Any, memo: dict[int, Any] | None = None) -> Any:
        from moto.dynamodb.models.table import Table

        if getattr(self.active, "on", False) and isinstance(obj, Table):
            return obj  # no rollback is needed: every condition was checked before
        return copy.deepcopy(obj, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _key(table: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any] | None:
    if op_type != "Put":
        return dict(op["Key"])
    attrs = op["Item"]
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr is not None else [])
    if any(n not in attrs for n in names):
        return None
    return {n: attrs[n] for n in names}


def _precheck(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]] | None:
    """Each item's condition outcome as moto reports it, or None when moto's own path must decide."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import ConditionalCheckFailed

    if len(transact_items) > 100:
        return None
    seen: set[tuple[str, str]] = set()
    errors: list[tuple[Any, Any, Any]] = []
    for item in transact_items:
        if len(item) != 1:
            return None
        op_type, op = next(iter(item.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            return None
        table_name = op.get("TableName")
        if table_name not in backend.tables:
            return None
        key = _key(backend.tables[table_name], op_type, op)
        if key is None:
            return None
        marker = (str(table_name), str(dict(sorted(key.items()))))
        if marker in seen:
            return None
        seen.add(marker)
        condition = op.get("ConditionExpression")
        if condition is None:
            errors.append((None, None, None))
            continue
        current = backend.get_item(table_name, key)
        check = get_filter_expression(
            condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        )
        if check.expr(current):
            errors.append((None, None, None))
            continue
        old = None
        if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
            old = current.to_json()["Attributes"]
        errors.append(("ConditionalCheckFailed", str(ConditionalCheckFailed(item=old).message), old))
    return errors


@contextlib.contextmanager
def prechecked_transactions() -> Iterator[None]:
    """Patch moto's DynamoDB backend for the duration (process-wide: moto's server runs in this process)."""
    import moto.dynamodb.models as backend_module
    from moto.dynamodb.exceptions import TransactionCanceledException

    with _lock:
        shim = _NoSnapshot()
        original_copy = backend_module.copy
        original = backend_module.DynamoDBBackend.transact_write_items

        def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
            errors = _precheck(self, transact_items)
            if errors is None:
                return original(self, transact_items)
            if any(code is not None for code, _, _ in errors):
                raise TransactionCanceledException(errors)
            shim.active.on = True
            try:
                return original(self, transact_items)
            finally:
                shim.active.on = False

        backend_module.copy = shim  # type: ignore[assignment]
        backend_module.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        with _lock:
            backend_module.copy = original_copy
            backend_module.DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]
