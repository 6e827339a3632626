"""X-Ray tracing of a handler through Powertools' Tracer, loaded only when tracing is on.

Why not a module-level ``Tracer()``: constructing one imports the X-Ray SDK (``aws_xray_sdk.core``, its
recorder and sampler, about 0.4 s of a 1.4 s handler import here) even when tracing is disabled, because
Powertools resolves its provider before it looks at ``disabled``. Where nothing will be traced (outside
Lambda, in tests and tools, or with ``POWERTOOLS_TRACE_DISABLED=true``) that is import time for nothing.
So the decision is Powertools' own (``tracing_enabled`` reads the same variables with the same rules),
made once at import, and the SDK is imported only when the answer is yes. On Lambda with tracing active
(the stack sets ``Tracing.ACTIVE``) the handler is wrapped exactly as ``@tracer.capture_lambda_handler``
wrapped it before: same subsegment, annotations and auto-patched boto3 calls.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from aws_lambda_powertools.shared import constants as pt
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

F = TypeVar("F", bound=Callable[..., Any])


def tracing_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether Powertools' Tracer would trace here: not disabled by POWERTOOLS_TRACE_DISABLED, and on Lambda
    (LAMBDA_TASK_ROOT set) but not in SAM's or Chalice's local emulation (Tracer._is_tracer_disabled)."""
    env = os.environ if env is None else env
    if resolve_truthy_env_var_choice(env=env.get(pt.TRACER_DISABLED_ENV, "false")):
        return False
    in_lambda = bool(env.get(pt.LAMBDA_TASK_ROOT_ENV))
    emulated = bool(env.get(pt.SAM_LOCAL_ENV) or env.get(pt.CHALICE_LOCAL_ENV))
    return in_lambda and not emulated


def trace_lambda_handler(service: str, env: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """``@trace_lambda_handler(service)``: ``Tracer(service).capture_lambda_handler`` when tracing is on,
    else the handler unchanged (and the X-Ray SDK never imported)."""
    if not tracing_enabled(env):
        return _unchanged
    from aws_lambda_powertools import Tracer  # imports aws_xray_sdk: only here, only when tracing

    tracer = Tracer(service=service)
    return cast("Callable[[F], F]", tracer.capture_lambda_handler)


def _unchanged(handler: F) -> F:
    return handler
