"""`pigeonhole local up` and `pigeonhole local send`: a long-running local system you can poke at.

`up` keeps moto and the poller running and prints every result as it lands; it reads (and
deletes) what reaches the sink, review, quarantine and dead-letter queues so each line prints
once. `--no-tail` leaves them in place for `aws sqs receive-message`.
"""

from __future__ import annotations

import json
import shlex
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from pigeonhole_tools.local.emulator import (
    FAKE_CREDENTIAL,
    INPUT_DETAIL_TYPE,
    INPUT_SOURCE,
    LocalResources,
    events_client,
    sqs_client,
)
from pigeonhole_tools.local.poller import Invocation
from pigeonhole_tools.local.streaming import Collector, Landing

Via = Literal["queue", "bus"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def example_event(text: str, event_id: str | None = None) -> dict[str, str]:
    """A producer event as the input contract defines it."""
    return {"id": event_id or f"cli-{uuid.uuid4().hex[:12]}", "time": now_iso(), "text": text}


def cli_commands(resources: LocalResources) -> list[str]:
    """Copy-pasteable shell commands (AWS CLI v1/v2 and this CLI) against the running emulator."""
    ep = resources.endpoint
    region = resources.region
    queue_body = json.dumps(example_event("I lost my card yesterday, please block it", "cli-0001"))
    detail = json.dumps(example_event("How long does a transfer to Spain take?", "cli-0002"))
    entries = json.dumps(
        [
            {
                "EventBusName": resources.input_bus_name,
                "Source": INPUT_SOURCE,
                "DetailType": INPUT_DETAIL_TYPE,
                "Detail": detail,
            }
        ]
    )
    return [
        f"export AWS_ACCESS_KEY_ID={FAKE_CREDENTIAL} AWS_SECRET_ACCESS_KEY={FAKE_CREDENTIAL} "
        f"AWS_DEFAULT_REGION={region} AWS_EC2_METADATA_DISABLED=true",
        f"aws --endpoint-url {ep} sqs send-message --queue-url {resources.ingest.url} "
        f"--message-body {shlex.quote(queue_body)}",
        f"aws --endpoint-url {ep} events put-events --entries {shlex.quote(entries)}",
        f"aws --endpoint-url {ep} sqs receive-message --queue-url {resources.review.url} "
        "--max-number-of-messages 10  # with `local up --no-tail`",
        f'pigeonhole local send --endpoint {ep} --text "my card payment was declined"',
        f'pigeonhole local send --endpoint {ep} --via bus --text "can I get a virtual card?"',
    ]


def banner(resources: LocalResources) -> Panel:
    lines = [
        f"moto endpoint: [bold]{resources.endpoint}[/]  region {resources.region}",
        f"ingest queue:  {resources.ingest.url}",
        f"input bus:     {resources.input_bus_name} (rule {resources.input_rule_name}: detail-type "
        f"{INPUT_DETAIL_TYPE!r} → ingest queue)",
        f"review:        {resources.review.url}",
        f"quarantine:    {resources.quarantine.url}",
        f"output sink:   {resources.output_sink.url} (EventClassified from bus {resources.output_bus_name})",
        f"ingest DLQ:    {resources.ingest_dlq.url}",
        "Ctrl-C stops everything (the emulator keeps no state on disk).",
    ]
    return Panel("\n".join(lines), title="pigeonhole local up", expand=False)


def print_commands(resources: LocalResources, console: Console) -> None:
    """The commands unwrapped and unstyled, so they copy-paste as they are."""
    console.print("Try, in another shell:")
    for cmd in cli_commands(resources):
        console.print(cmd, soft_wrap=True, markup=False, highlight=False)


def _review_reason(doc: dict[str, object]) -> str:
    """Why the event is in review, from the message's own route_reason (the tail must not guess it)."""
    reason = doc.get("route_reason")
    if reason == "unknown":
        score = doc.get("unknown_score")
        shown = f" {score:.2f}" if isinstance(score, int | float) else ""
        return f"unknown: looks like no known class, unknown score{shown}"
    if reason == "low_confidence":
        return "below the confidence threshold"
    return escape(str(reason))


def describe_landing(landing: Landing) -> str:
    """One line for a result that landed somewhere (rich markup)."""
    doc = landing.doc()
    if landing.where == "output" and isinstance(doc, dict) and isinstance(doc.get("detail"), dict):
        d = doc["detail"]
        top = ", ".join(f"{t['label']} {t['score']:.2f}" for t in d.get("top_k", [])[1:])
        return (
            f"[green]auto[/]        {escape(str(d.get('id')))}  [bold]{escape(str(d.get('label')))}[/] "
            f"{d.get('confidence', 0):.2f}  (next: {escape(top)})"
        )
    if landing.where == "review" and isinstance(doc, dict):
        return (
            f"[yellow]review[/]      {escape(str(doc.get('id')))}  {escape(str(doc.get('label')))} "
            f"{doc.get('confidence', 0):.2f}  ({_review_reason(doc)})"
        )
    if landing.where == "quarantine" and isinstance(doc, dict):
        reason = doc.get("reason") or {}
        return (
            f"[red]quarantine[/]  message {escape(str(doc.get('message_id')))}  "
            f"[bold]{escape(str(reason.get('code')))}[/] {escape(str(reason.get('field') or ''))}: "
            f"{escape(str(reason.get('detail')))}"
        )
    return (
        f"[magenta]dead letter[/] {escape(landing.queue)}  message {landing.message_id}  {escape(landing.body[:120])}"
    )


def tail_outputs(resources: LocalResources, console: Console, stop: threading.Event) -> None:
    """Print and delete everything that reaches a destination queue, until `stop` is set."""
    Collector(resources, on_landing=lambda landing: console.print(describe_landing(landing))).run(stop, 0.3)


def print_invocation(console: Console) -> Any:
    """A poller callback that reports whole-batch failures and retried records."""

    def report(invocation: Invocation) -> None:
        if invocation.error is not None:
            console.print(f"[bold red]batch of {invocation.records} failed[/]: {escape(invocation.error)}")
        elif invocation.failed_ids:
            console.print(f"[red]{len(invocation.failed_ids)} record(s) reported as failed; SQS will redeliver[/]")

    return report


@dataclass(frozen=True)
class SendResult:
    event_id: str | None
    via: Via
    transport_id: str  # SQS MessageId or EventBridge EventId


def send_event(endpoint: str, *, prefix: str, region: str, body: str, via: Via, max_attempts: int = 3) -> SendResult:
    """Drop one event on the ingest queue or the input bus of a running local system."""
    from pigeonhole.naming import ResourceNames
    from pigeonhole_tools.local.samples import producer_id

    names = ResourceNames(prefix)
    if via == "queue":
        sqs = sqs_client(endpoint, region, max_attempts)
        url = sqs.get_queue_url(QueueName=names.ingest_queue)["QueueUrl"]
        message_id = sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"]
        return SendResult(producer_id(body), via, message_id)
    bus = events_client(endpoint, region, max_attempts)
    result = bus.put_events(
        Entries=[
            {"EventBusName": names.input_bus, "Source": INPUT_SOURCE, "DetailType": INPUT_DETAIL_TYPE, "Detail": body}
        ]
    )
    entry = result["Entries"][0]
    if "EventId" not in entry:
        raise RuntimeError(f"the input bus refused the event: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
    return SendResult(producer_id(body), via, entry["EventId"])
