"""End-to-end fixtures: a moto server on loopback, a freshly provisioned system per test, the real handler.

moto keeps state in process-wide backends, so each test provisions its own system under a unique
prefix on the module's server. Every environment change is undone after the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pigeonhole_tools.local.emulator import Emulator, LocalResources, provision


@pytest.fixture
def restore_environ() -> Iterator[None]:
    """Snapshot os.environ and put it back exactly: the local runtime sets Lambda's environment in-process."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator() as server:
        yield server


@pytest.fixture
def system(emulator: Emulator, model_dir: Path, restore_environ: None) -> Iterator[LocalResources]:
    """One provisioned local system, with the classifier's environment pointing at it."""
    from pigeonhole.classify import handler as handler_module

    resources = provision(emulator.endpoint, prefix=f"e2e-{uuid.uuid4().hex[:8]}", max_attempts=1)
    os.environ.update(resources.lambda_environment(model_dir))
    handler_module.reset_for_tests()  # a cold container that reads this environment
    yield resources
    handler_module.reset_for_tests()


@pytest.fixture
def real_handler(system: LocalResources) -> Any:
    from pigeonhole.classify.handler import handler

    return handler
