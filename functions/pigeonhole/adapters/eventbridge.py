"""Publish events to an EventBridge bus in batches, reporting failures per entry."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

MAX_ENTRIES = 10  # PutEvents accepts at most 10 entries a call
MAX_REQUEST_BYTES = 256 * 1024


class EventBusPublisher:
    def __init__(self, client: EventBridgeClient, bus_name: str, source: str, detail_type: str) -> None:
        self._client = client
        self._bus = bus_name
        self._source = source
        self._detail_type = detail_type

    def publish(self, items: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, str]:
        """Put each (key, detail); return {key: error} for the entries that did not land."""
        failures: dict[str, str] = {}
        for start in range(0, len(items), MAX_ENTRIES):
            chunk = items[start : start + MAX_ENTRIES]
            entries: list[PutEventsRequestEntryTypeDef] = [
                {
                    "EventBusName": self._bus,
                    "Source": self._source,
                    "DetailType": self._detail_type,
                    "Detail": json.dumps(detail, separators=(",", ":")),
                }
                for _, detail in chunk
            ]
            try:
                response = self._client.put_events(Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                failures.update({key: f"PutEvents failed: {exc}" for key, _ in chunk})
                continue
            for (key, _), result in zip(chunk, response["Entries"], strict=False):
                if "ErrorCode" in result:
                    failures[key] = f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}"
            if len(response["Entries"]) < len(chunk):  # defensive: a short answer means unknown outcome
                failures.update({key: "PutEvents returned no result" for key, _ in chunk[len(response["Entries"]) :]})
        return failures
