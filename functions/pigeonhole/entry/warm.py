"""Warm means warm: where Lambda runs init off the request path, build the service during init.

Under provisioned concurrency and SnapStart, Lambda initialises an execution environment before any
request reaches it (and SnapStart snapshots the result), so a model verified and loaded there costs
no request anything. On demand, init *is* on the first request's path and counts against the 10 s
init limit, so the service stays lazy there, and importing a handler stays cheap for tests and tools.
Nothing here creates a network connection: clients connect on first use, after any snapshot restore.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pigeonhole.constants import ENV_LAMBDA_INITIALIZATION_TYPE
from pigeonhole.entry.lazy import Lazy

# The values of AWS_LAMBDA_INITIALIZATION_TYPE whose init runs before traffic ("on-demand" does not).
PREWARMED_INIT_TYPES = frozenset({"provisioned-concurrency", "snap-start"})


def warm_during_init(holder: Lazy[Any], env: Mapping[str, str] | None = None) -> bool:
    """Build the held service now if this environment is pre-warmed; say whether it was built.

    A service that fails to build (a tampered model) raises here, so the environment never becomes
    ready and provisioned concurrency or the SnapStart version reports the failure before traffic.
    """
    env = os.environ if env is None else env
    if env.get(ENV_LAMBDA_INITIALIZATION_TYPE) not in PREWARMED_INIT_TYPES:
        return False
    holder.get()
    return True
