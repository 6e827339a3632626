"""`pigeonhole local demo`: the whole flow on loopback, with every event accounted for.

Starts moto, provisions the system, streams the project's sample support messages through both
entry points (SQS SendMessageBatch and EventBridge PutEvents on the input bus), runs the poller
(Lambda's event source mapping, emulated) with the real classifier handler until the ingest queue
drains, then reads every destination back and matches each event to where it landed: the output
bus (via the local sink queue), the review queue, the quarantine queue or a dead-letter queue.

Modules: :mod:`.accounting` (each event matched to its landings; window counters and EMF read back),
:mod:`.report` (``DemoReport``, the terminal summary) and :mod:`.run` (``run_demo``). The producer, the
destinations' collector and the drain check are :mod:`pigeonhole_tools.local.streaming`, shared with the
drift phase (``local/drift_phase.py``) and ``local up``; re-exported here for the callers of demo.py.
"""

from __future__ import annotations

from pigeonhole_tools.local.demo.accounting import Accounting, account, inference_times, window_totals
from pigeonhole_tools.local.demo.report import DemoReport, render
from pigeonhole_tools.local.demo.run import (
    DEFAULT_HANDLER,
    DemoOptions,
    ModelMissingError,
    load_handler,
    require_model,
    run_demo,
)
from pigeonhole_tools.local.streaming import (
    CHUNK,
    Collector,
    Landing,
    Sent,
    Where,
    destinations,
    stream_events,
    wait_drained,
)

__all__ = [
    "CHUNK",
    "DEFAULT_HANDLER",
    "Accounting",
    "Collector",
    "DemoOptions",
    "DemoReport",
    "Landing",
    "ModelMissingError",
    "Sent",
    "Where",
    "account",
    "destinations",
    "inference_times",
    "load_handler",
    "render",
    "require_model",
    "run_demo",
    "stream_events",
    "wait_drained",
    "window_totals",
]
