"""Publish events to an EventBridge bus in batches, reporting failures per entry.

Batches are cut by count (10 entries a call) and by size (PutEvents refuses a request over 256 KiB,
counted as AWS documents it: Time + Source + DetailType + Detail + Resources, in UTF-8 bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from pigeonhole.wire import NotRepresentableError, strict_dumps, utf8_len

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

MAX_ENTRIES = 10  # PutEvents accepts at most 10 entries a call
MAX_REQUEST_BYTES = 256 * 1024
_TIME_BYTES = 14  # the size AWS counts for an entry's Time, present or not (conservative)


class EventBusPublisher:
    def __init__(self, client: EventBridgeClient, bus_name: str, source: str, detail_type: str) -> None:
        self._client = client
        self._bus = bus_name
        self._source = source
        self._detail_type = detail_type

    def entry_size(self, detail: str) -> int:
        return _TIME_BYTES + utf8_len(self._source) + utf8_len(self._detail_type) + utf8_len(detail)

    def publish(self, items: Sequence[tuple[str, dict[str, Any] | str]]) -> dict[str, str]:
        """Put each (key, detail); return {key: error} for the entries that did not land.

        A detail may be given already serialized (strict JSON); a dict is serialized here.
        """
        failures: dict[str, str] = {}
        ready: list[tuple[str, str, int]] = []
        for key, detail in items:
            try:
                text = detail if isinstance(detail, str) else strict_dumps(detail)
            except NotRepresentableError as exc:
                failures[key] = str(exc)
                continue
            size = self.entry_size(text)
            if size > MAX_REQUEST_BYTES:
                failures[key] = f"entry is {size} bytes; PutEvents accepts at most {MAX_REQUEST_BYTES}"
                continue
            ready.append((key, text, size))
        chunk: list[tuple[str, str, int]] = []
        used = 0
        for item in ready:
            if chunk and (len(chunk) >= MAX_ENTRIES or used + item[2] > MAX_REQUEST_BYTES):
                self._put(chunk, failures)
                chunk, used = [], 0
            chunk.append(item)
            used += item[2]
        if chunk:
            self._put(chunk, failures)
        return failures

    def _put(self, chunk: Sequence[tuple[str, str, int]], failures: dict[str, str]) -> None:
        entries: list[PutEventsRequestEntryTypeDef] = [
            {"EventBusName": self._bus, "Source": self._source, "DetailType": self._detail_type, "Detail": text}
            for _, text, _ in chunk
        ]
        try:
            response = self._client.put_events(Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            failures.update({key: f"PutEvents failed: {exc}" for key, _, _ in chunk})
            return
        results = response.get("Entries", [])
        for (key, _, _), result in zip(chunk, results, strict=False):
            if "ErrorCode" in result or "EventId" not in result:
                failures[key] = f"{result.get('ErrorCode', 'NoEventId')}: {result.get('ErrorMessage', '')}"
        if len(results) < len(chunk):  # defensive: a short answer means unknown outcome
            failures.update({key: "PutEvents returned no result" for key, _, _ in chunk[len(results) :]})
