"""In-process moto DynamoDB for simulations: the topology's tables, faster transactions, TTL expiry.

The tables are created by the local runtime's provisioning (`pigeonhole_tools.local.emulator`,
from the specs in `pigeonhole.topology`), so the harness simulates the tables the stack deploys.

Two things make moto unusable for hundreds of thousands of events, and both are fixed here without
changing what the code under test sees:

* ``TransactWriteItems`` snapshots a whole table with ``copy.deepcopy`` once *per item* of the
  transaction (for rollback), so a 50-marker transaction copied the predictions table 50 times and
  every window got slower than the last. :func:`fast_transactions` makes it copy each table once per
  transaction. The snapshots are all taken before any item is applied, so one copy per table is the
  same state; rollback behaves exactly as before.
* moto never expires TTL items, so markers pile up and each snapshot grows. :meth:`Sandbox.expire`
  deletes items the simulation knows are dead (markers of events whose window is closed and labelled;
  window items older than the drift run's lookback + reference), as DynamoDB's TTL would eventually.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pigeonhole import topology
from pigeonhole.naming import ResourceNames
from pigeonhole_tools.local.provisioning import Provisioned, create_table, create_topology

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

REGION = "us-east-1"
_BATCH_WRITE_LIMIT = 25


DEFAULT_PREFIX = "harness"


@dataclass(frozen=True)
class TableNames:
    """The three tables' physical names for one prefix (`pigeonhole.naming`)."""

    windows: str
    predictions: str
    feedback: str

    @classmethod
    def for_prefix(cls, prefix: str = DEFAULT_PREFIX) -> TableNames:
        names = ResourceNames(prefix)
        return cls(names.windows_table, names.predictions_table, names.feedback_table)


class TransactionRollbackDisabledError(RuntimeError):
    """A transaction failed while moto's rollback snapshots were switched off: the tables may hold part of
    it, so the simulation cannot go on."""


class _SnapshotOncePerTransaction:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend during one transaction."""

    def __init__(self, rollback: bool = True) -> None:
        self._local = threading.local()
        self.rollback = rollback

    def begin(self) -> None:
        self._local.cache = {}

    def end(self) -> None:
        self._local.cache = None

    def deepcopy(self, obj: Any, memo: dict[int, Any] | None = None) -> Any:
        from moto.dynamodb.models.table import Table

        cache: dict[int, Any] | None = getattr(self._local, "cache", None)
        if cache is not None and isinstance(obj, Table):
            if not self.rollback:
                return obj  # no snapshot: a failed transaction aborts the simulation instead
            if id(obj) not in cache:
                cache[id(obj)] = copy.deepcopy(obj)
            return cache[id(obj)]
        return copy.deepcopy(obj, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


_install_lock = threading.Lock()


@contextmanager
def fast_transactions(rollback: bool = True) -> Iterator[None]:
    """Patch moto's DynamoDB backend so a transaction snapshots each table once (see the module doc).

    ``rollback=False`` takes no snapshot at all and turns any failed transaction into
    :class:`TransactionRollbackDisabledError`: for simulations whose transactions must never fail (unique
    event ids, no injected conflicts), where a failure means the run is invalid anyway.
    """
    import moto.dynamodb.models as backend_module

    with _install_lock:
        shim = _SnapshotOncePerTransaction(rollback)
        original_copy = backend_module.copy
        original = backend_module.DynamoDBBackend.transact_write_items

        def transact_write_items(self: Any, *args: Any, **kwargs: Any) -> Any:
            shim.begin()
            try:
                return original(self, *args, **kwargs)
            except Exception as exc:
                if not rollback:
                    raise TransactionRollbackDisabledError(f"transaction failed without rollback: {exc}") from exc
                raise
            finally:
                shim.end()

        backend_module.copy = shim  # type: ignore[assignment]
        backend_module.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        with _install_lock:
            backend_module.copy = original_copy
            backend_module.DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]


class Sandbox:
    """moto (``mock_aws``) with the local topology provisioned and fast transactions; use as a context manager.

    Every boto3 client must be created inside it (a client made before the mock starts is not mocked).
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX, region: str = REGION, *, rollback: bool = True) -> None:
        self.prefix = prefix
        self.resource_names = ResourceNames(prefix)
        self.names = TableNames.for_prefix(prefix)
        self.provisioned = Provisioned()
        self.region = region
        self.rollback = rollback
        self._stack: list[Any] = []
        self.client: DynamoDBClient | None = None

    def __enter__(self) -> Sandbox:
        import boto3
        from botocore.config import Config
        from moto import mock_aws

        mock = mock_aws()
        mock.start()
        self._stack.append(mock.stop)
        fast = fast_transactions(self.rollback)
        fast.__enter__()
        self._stack.append(lambda: fast.__exit__(None, None, None))
        session = boto3.Session(region_name=self.region)
        config = Config(retries={"max_attempts": 1})
        self.client = session.client("dynamodb", config=config)
        # The local topology without its rules: the simulation discards what reaches the output bus.
        self.provisioned = create_topology(
            session.client("sqs", config=config),
            session.client("events", config=config),
            self.client,
            topology.build(self.resource_names),
            rules=False,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        while self._stack:
            self._stack.pop()()

    @property
    def dynamodb(self) -> DynamoDBClient:
        if self.client is None:
            raise RuntimeError("the sandbox is not started")
        return self.client

    def session(self) -> Any:
        import boto3

        return boto3.Session(region_name=self.region)

    def expire_all(self, table: str) -> None:
        """Every item of a hash-key-only table is dead (e.g. markers of closed windows): empty it in one go by
        re-creating it, which is what TTL would get to item by item."""
        spec = topology.build(self.resource_names).table(table)
        if spec.sort_key is not None:
            raise ValueError(f"{table} has a sort key: expire its items with expire()")
        self.dynamodb.delete_table(TableName=table)
        create_table(self.dynamodb, spec)

    def expire(self, table: str, keys: Iterable[dict[str, str]]) -> int:
        """Delete items by key (what TTL would do later); returns how many delete requests were sent."""
        pending: Sequence[dict[str, str]] = list(keys)
        sent = 0
        for start in range(0, len(pending), _BATCH_WRITE_LIMIT):
            requests: Any = [
                {"DeleteRequest": {"Key": {k: {"S": v} for k, v in key.items()}}}
                for key in pending[start : start + _BATCH_WRITE_LIMIT]
            ]
            while requests:
                out = self.dynamodb.batch_write_item(RequestItems={table: requests})
                requests = (out.get("UnprocessedItems") or {}).get(table, [])
            sent += len(pending[start : start + _BATCH_WRITE_LIMIT])
        return sent
