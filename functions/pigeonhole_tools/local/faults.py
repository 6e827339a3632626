"""Fault injection around a real handler, to exercise retries and the DLQ on purpose (demo and tests).

Labelled emulation: nothing in the classifier fails by itself in the demo; these wrappers make
chosen events fail every time so the redrive path (5 receives, then the DLQ) can be seen working.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pigeonhole_tools.local.poller import Handler
from pigeonhole_tools.local.samples import producer_id


def fail_records(handler: Handler, poison_ids: Collection[str]) -> Handler:
    """Records whose producer id is in `poison_ids` fail every time; the others go to `handler`.

    This is what Powertools' BatchProcessor reports when one record's processing raises: the rest
    of the batch succeeds and the poison record comes back as a batch item failure.
    """
    poison_set = frozenset(poison_ids)

    def wrapped(event: dict[str, Any], context: Any) -> dict[str, Any]:
        records = event.get("Records", [])
        poison = [r for r in records if producer_id(r.get("body")) in poison_set]
        if not poison:
            return handler(event, context)
        failures: list[dict[str, Any]] = []
        rest = [r for r in records if r not in poison]
        if rest:
            response = handler({**event, "Records": rest}, context) or {}
            failures.extend(response.get("batchItemFailures") or [])
        failures.extend({"itemIdentifier": r["messageId"]} for r in poison)
        return {"batchItemFailures": failures}

    return wrapped


class InjectedFault(RuntimeError):  # noqa: N818 (it is a fault, not an error of the code under test)
    """Raised by `raise_on`: the function error that fails a whole batch."""


def raise_on(handler: Handler, poison_ids: Collection[str]) -> Handler:
    """The handler raises whenever a batch holds a poison record, so the whole batch fails (nothing deleted)."""
    poison_set = frozenset(poison_ids)

    def wrapped(event: dict[str, Any], context: Any) -> Any:
        ids = {producer_id(r.get("body")) for r in event.get("Records", [])}
        if ids & poison_set:
            raise InjectedFault(f"injected failure for {sorted(i for i in ids & poison_set if i)}")
        return handler(event, context)

    return wrapped
