"""Tracing costs its import only when it is on: the X-Ray SDK stays out of a handler's import when tracing
is off, and when it is on (on Lambda, not disabled) the handler is still wrapped and its subsegment reaches
the X-Ray daemon address (a UDP socket here, playing the daemon Lambda runs beside the function)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pigeonhole.entry.tracing import tracing_enabled

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
HANDLERS = (
    "pigeonhole.classify.handler",
    "pigeonhole.drift.handler",
    "pigeonhole.feedback.handler",
    "pigeonhole.hook.handler",
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),  # tests, tools, the local runtime: Powertools would not trace either
        ({"LAMBDA_TASK_ROOT": "/var/task"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "1"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "false"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_CHALICE_CLI_MODE": "true"}, False),
    ],
)
def test_tracing_is_on_exactly_when_powertools_would_trace(env: dict[str, str], expected: bool) -> None:
    assert tracing_enabled(env) is expected
    from aws_lambda_powertools.tracing.tracer import Tracer

    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update({"PATH": saved.get("PATH", ""), **env})
        assert (not Tracer._is_tracer_disabled()) is expected, "Powertools' own rule disagrees"
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _python(code: str, env: dict[str, str], timeout: float = 120) -> dict[str, object]:
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(FUNCTIONS), "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


IMPORT_ALL = f"""
import json, sys
for name in {HANDLERS!r}:
    __import__(name)
print(json.dumps({{"xray": sorted(m for m in sys.modules if m.split(".")[0] == "aws_xray_sdk")}}))
"""


@pytest.mark.parametrize(
    "env",
    [
        {"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"},  # on Lambda, tracing switched off
        {},  # outside Lambda (tests, tools, the local runtime)
    ],
    ids=["disabled-on-lambda", "outside-lambda"],
)
def test_importing_the_handlers_does_not_import_the_xray_sdk_when_tracing_is_off(env: dict[str, str]) -> None:
    assert _python(IMPORT_ALL, env)["xray"] == []


TRACED_BATCH = """
import json, sys
import pigeonhole.classify.handler as h

class Service:
    def handle(self, event, context):
        return {"batchItemFailures": []}

class Ctx:
    function_name, function_version, memory_limit_in_mb = "classifier", "1", 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:classifier:live"
    aws_request_id, log_group_name, log_stream_name = "r", "g", "s"
    @staticmethod
    def get_remaining_time_in_millis(): return 30_000

h.reset_for_tests(Service())
response = h.handler({"Records": []}, Ctx())
print(json.dumps({"response": response, "xray": "aws_xray_sdk.core" in sys.modules}))
"""


def test_with_tracing_on_the_handler_is_wrapped_and_its_subsegment_is_sent() -> None:
    """As on Lambda with active tracing: LAMBDA_TASK_ROOT, a sampled trace header, the daemon's address."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(30)
        port = daemon.getsockname()[1]
        env = {
            "LAMBDA_TASK_ROOT": "/var/task",
            "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{port}",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "POWERTOOLS_SERVICE_NAME": "classifier",
        }
        result = _python(TRACED_BATCH, env)
        assert result == {"response": {"batchItemFailures": []}, "xray": True}
        documents = []
        while True:
            try:
                packet = daemon.recv(65536)
            except TimeoutError:
                break
            header, _, body = packet.decode().partition("\n")
            assert json.loads(header) == {"format": "json", "version": 1}
            documents.append(json.loads(body))
            if any(d.get("name") == "## handler" for d in documents):
                break
    (subsegment,) = [d for d in documents if d.get("name") == "## handler"]
    assert subsegment["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert subsegment["annotations"]["ColdStart"] is True
    assert subsegment["annotations"]["Service"] == "classifier"
