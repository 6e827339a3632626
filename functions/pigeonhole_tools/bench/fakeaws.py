"""AWS answered in-process: a boto3 session whose every call returns a canned success, with no network.

Why: the warm-path and cold-start figures must time Pigeonhole's own code (parsing, inference, routing,
building requests) and not moto or a network. botocore lets a ``before-call`` handler return the
response itself; the request is still built, validated and serialized as it would be on Lambda (with the
clients' configuration), only the round trip and the response parsing are skipped. The answers are the
success shapes the adapters read.

This module imports nothing from Pigeonhole, so the cold-start runs can load it from its file in a
fresh interpreter that has only the runtime layer on its path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

_PARAMS_KEY = "pigeonhole_fake_params"


class _Http:
    status_code = 200
    headers: Mapping[str, str] = {}
    content = b""


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def answer(operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The success response of one call, shaped like AWS's (only what callers read)."""
    if operation == "SendMessageBatch":
        entries = params.get("Entries", [])
        return {
            "Successful": [
                {"Id": e["Id"], "MessageId": f"m-{i}", "MD5OfMessageBody": _md5(e.get("MessageBody", ""))}
                for i, e in enumerate(entries)
            ],
            "Failed": [],
        }
    if operation == "SendMessage":
        return {"MessageId": "m-0", "MD5OfMessageBody": _md5(params.get("MessageBody", ""))}
    if operation == "PutEvents":
        return {"FailedEntryCount": 0, "Entries": [{"EventId": f"e-{i}"} for i in range(len(params["Entries"]))]}
    if operation == "BatchWriteItem":
        return {"UnprocessedItems": {}}
    if operation in ("Query", "Scan"):
        return {"Items": [], "Count": 0, "ScannedCount": 0}
    if operation == "BatchGetItem":
        return {"Responses": {t: [] for t in params.get("RequestItems", {})}, "UnprocessedKeys": {}}
    return {}


def _keep(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
    context[_PARAMS_KEY] = params


def _respond(model: Any, context: Mapping[str, Any], **_: Any) -> tuple[_Http, dict[str, Any]]:
    return _Http(), answer(model.name, context.get(_PARAMS_KEY, {}))


def make_session(region: str = "us-east-1") -> Any:
    """A boto3 Session with fake credentials whose clients never leave the process."""
    import boto3

    fake = "testing"  # moto's conventional fake credential: never sent anywhere, no call leaves the process
    session = boto3.Session(
        aws_access_key_id=fake, aws_secret_access_key=fake, aws_session_token=fake, region_name=region
    )
    session.events.register("before-parameter-build", _keep)
    session.events.register("before-call", _respond)  # type: ignore[arg-type]  # it returns the response
    return session
