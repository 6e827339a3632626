"""Fail the functions' AWS calls on purpose, through botocore's own event hooks (seeded).

A ``before-send`` handler sits on the clients the real handlers build (it is registered on the boto3
session their ``build_service`` receives), so every attempt botocore makes, retries included, passes
through it. With probability ``rate`` it answers for AWS instead of moto: an HTTP error response that
botocore parses and retries exactly as it would a real one (throttling, 5xx), a conflict or an access
denial the code has to handle itself, or a timeout raised before the request was sent or after it
landed (the write happened; the answer was lost). Everything downstream is the real code path.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from botocore.httpsession import URLLib3Session

from pigeonhole_tools.reliability.config import FaultKind, FaultPlan

_DYNAMODB_TYPE = "com.amazonaws.dynamodb.v20120810#"


class _Body:
    """The ``raw`` of an AWSResponse: botocore reads it through ``stream()``."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def error_response(url: str, status: int, code: str, message: str, **extra: Any) -> AWSResponse:
    """An AWS JSON-protocol error (SQS, EventBridge and DynamoDB all speak it here)."""
    body = json.dumps({"__type": code, "message": message, "Message": message, **extra}).encode()
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.0"
    headers["x-amzn-RequestId"] = "injected-fault"
    return AWSResponse(url, status, headers, _Body(body))


@dataclass(frozen=True)
class LostResponse:
    """A call that landed in moto whose answer the client never saw; ``refs`` are the ids it carried."""

    operation: str
    refs: tuple[str, ...]


@dataclass
class InjectionStats:
    attempts: Counter[str] = field(default_factory=Counter)  # per operation, every HTTP attempt
    faults: Counter[str] = field(default_factory=Counter)  # per "operation:kind"
    lost: list[LostResponse] = field(default_factory=list)

    @property
    def total_attempts(self) -> int:
        return sum(self.attempts.values())

    @property
    def total_faults(self) -> int:
        return sum(self.faults.values())

    def by_kind(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for key, n in self.faults.items():
            out[key.rsplit(":", 1)[1]] += n
        return dict(sorted(out.items()))

    def by_operation(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for op, n in sorted(self.attempts.items()):
            faults = sum(v for k, v in self.faults.items() if k.rsplit(":", 1)[0] == op)
            out[op] = {"attempts": n, "faults": faults}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempts": self.total_attempts,
            "faults": self.total_faults,
            "by_kind": self.by_kind(),
            "by_operation": self.by_operation(),
            "responses_lost_after_landing": len(self.lost),
        }


def _refs(operation: str, body: bytes | str | None) -> tuple[str, ...]:
    """Ids carried by a PutEvents / SendMessageBatch request (to explain the duplicates it may cause)."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return ()
    texts: list[str] = []
    if operation == "PutEvents":
        texts = [e.get("Detail", "") for e in doc.get("Entries", [])]
    elif operation == "SendMessageBatch":
        texts = [e.get("MessageBody", "") for e in doc.get("Entries", [])]
    refs: list[str] = []
    for text in texts:
        try:
            inner = json.loads(text)
        except ValueError:
            continue
        if isinstance(inner, dict):
            refs += [str(inner[k]) for k in ("id", "message_id") if isinstance(inner.get(k), str)]
    return tuple(refs)


class FaultInjector:
    """A seeded ``before-send`` hook; ``attach`` it to a session before the handler builds its clients."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.stats = InjectionStats()
        self._rng = random.Random(plan.seed)
        self._lock = threading.Lock()
        self._http = URLLib3Session()  # sends the requests whose answer is lost (loopback only: moto)
        self.enabled = True

    def attach(self, session: boto3.Session) -> boto3.Session:
        session.events.register("before-send", self.before_send)  # type: ignore[arg-type]
        return session

    def before_send(self, request: AWSPreparedRequest, event_name: str = "", **_: Any) -> AWSResponse | None:
        parts = event_name.split(".")
        service, operation = (parts[1], parts[2]) if len(parts) >= 3 else ("", "")
        with self._lock:
            self.stats.attempts[operation] += 1
            if not self.enabled or self._rng.random() >= self.plan.rate:
                return None
            kinds = [k for k in self.plan.kinds if k != FaultKind.TRANSACTION_CONFLICT or service == "dynamodb"]
            kind = self._rng.choice(kinds)
            landed = kind == FaultKind.TIMEOUT and self._rng.random() < self.plan.landed_fraction
            variant = self._rng.random()
            self.stats.faults[f"{operation}:{kind}"] += 1
        url = request.url or ""
        body = request.body if isinstance(request.body, bytes | str) else None
        if kind == FaultKind.THROTTLING:
            return error_response(url, 400, "ThrottlingException", "Rate exceeded (injected)")
        if kind == FaultKind.SERVER_ERROR:
            if variant < 0.5:
                return error_response(url, 500, "InternalFailure", "injected server error")
            return error_response(url, 503, "ServiceUnavailable", "injected: service unavailable")
        if kind == FaultKind.ACCESS_DENIED:
            return error_response(url, 400, "AccessDeniedException", "injected: not authorized")
        if kind == FaultKind.TRANSACTION_CONFLICT:
            return self._conflict(url, operation, body)
        if landed:
            self._http.send(request)  # it lands in moto ...
            with self._lock:
                self.stats.lost.append(LostResponse(operation, _refs(operation, body)))
            raise ReadTimeoutError(endpoint_url=url)  # ... and the answer is lost
        raise ConnectTimeoutError(endpoint_url=url)

    @staticmethod
    def _conflict(url: str, operation: str, body: bytes | str | None) -> AWSResponse:
        if operation == "TransactWriteItems":
            try:
                items = len(json.loads(body or b"{}").get("TransactItems", []))
            except ValueError:
                items = 1
            reasons = [{"Code": "TransactionConflict", "Message": "injected conflict"} for _ in range(max(items, 1))]
            return error_response(
                url,
                400,
                _DYNAMODB_TYPE + "TransactionCanceledException",
                "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
                CancellationReasons=reasons,
            )
        return error_response(
            url, 400, _DYNAMODB_TYPE + "TransactionConflictException", "injected: item in an ongoing transaction"
        )


class _ScaledTime:
    """Stands in for the ``time`` module inside botocore.endpoint: retry sleeps shortened, the rest unchanged."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self.scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextlib.contextmanager
def compressed_backoff(scale: float) -> Iterator[None]:
    """Scale botocore's retry sleeps (emulation speed only: which calls are retried does not change)."""
    import botocore.endpoint as endpoint_module

    original = getattr(endpoint_module, "time")  # noqa: B009 (the module botocore.endpoint imported)
    setattr(endpoint_module, "time", _ScaledTime(scale))  # noqa: B010
    try:
        yield
    finally:
        setattr(endpoint_module, "time", original)  # noqa: B010
