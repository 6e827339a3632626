"""The cold-start bench runs the handler's processes as Lambda's runtime would set them up."""

from __future__ import annotations

from pathlib import Path

from pigeonhole.entry.tracing import tracing_enabled
from pigeonhole.entry.warm import PREWARMED_INIT_TYPES
from pigeonhole_tools.bench.cold import lambda_runtime_environment


def test_the_cold_start_environment_is_lambdas_on_demand_with_tracing_on() -> None:
    env = lambda_runtime_environment(Path("/var/task"))
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert env["AWS_EXECUTION_ENV"].startswith("AWS_Lambda_python")
    assert tracing_enabled(env)  # Powertools' rule: the handler is wrapped and the X-Ray SDK imported
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] not in PREWARMED_INIT_TYPES  # init on the request's path
    assert env["AWS_XRAY_DAEMON_ADDRESS"].startswith("127.0.0.1:")  # segments stay on this machine
