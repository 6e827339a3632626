"""The classifier's golden probe: labels for a few events, with no side effect at all.

The pre-traffic hook invokes the NEW Lambda version with ``{GOLDEN_PROBE_KEY: {"events": [...]}}``
before CodeDeploy gives it traffic. The version answers with the labels its own loaded model gives
(the same runtime, code, layers and memory that will serve) and the model it loaded, and publishes,
routes, counts and captures nothing: golden events must not reach consumers or the drift windows.
Nothing of the events' text is logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pigeonhole.constants import GOLDEN_PROBE_KEY
from pigeonhole.model.golden import runtime_classifier
from pigeonhole.model.runtime import ModelRuntime

MAX_PROBE_EVENTS: Final = 100  # far below Lambda's 6 MB synchronous payload at 2,000 characters an event


class ProbeError(ValueError):
    """The probe payload is malformed; the invocation fails (the hook reports the deployment Failed)."""


def is_probe(event: object) -> bool:
    return isinstance(event, Mapping) and GOLDEN_PROBE_KEY in event


def answer_probe(runtime: ModelRuntime, event: Mapping[str, Any]) -> dict[str, Any]:
    """``{"labels": [...], "model": {name, version, sha256}}`` for the probe's events, in order."""
    body = event.get(GOLDEN_PROBE_KEY)
    events = body.get("events") if isinstance(body, Mapping) else None
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_PROBE_EVENTS:
        raise ProbeError(f"a golden probe carries 1..{MAX_PROBE_EVENTS} events under {GOLDEN_PROBE_KEY}.events")
    names = [f.name for f in runtime.manifest.input.fields]
    fields: list[dict[str, str]] = []
    for item in events:
        if not isinstance(item, Mapping) or any(not isinstance(item.get(n), str) for n in names):
            raise ProbeError(f"every probe event needs the model's input fields as strings: {names}")
        fields.append({n: item[n] for n in names})
    manifest = runtime.manifest
    return {
        "labels": list(runtime_classifier(runtime)(fields)),
        "model": {"name": manifest.name, "version": manifest.version, "sha256": manifest.model.sha256},
    }
