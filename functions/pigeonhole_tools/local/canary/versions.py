"""Two classifier versions in one process, and a router that plays the weighted alias between them.

In AWS the live alias points at the current version and, during a canary, at the new version with a
weight: each invocation goes to one version. Locally the poller invokes one handler, so this module
gives it a handler that picks a version per batch and runs the real classifier handler
(`pigeonhole.classify.handler:handler`, its Powertools decorators included) with that version's
service swapped in, re-tagged with its model version so every EMF datapoint carries the right
``ModelVersion``. The poller invokes one batch at a time, so swapping a module-level service is safe.

The split is deterministic (error diffusion on integers): batch ``k`` goes to the candidate when
``(k + 1) * percent // 100 > k * percent // 100``, so every run of ``100 / gcd`` batches holds exactly
``percent`` % candidate batches. Lambda picks each invocation at random with that weight; the share
is the same, without the run-to-run noise that would make a short rehearsal flaky.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pigeonhole import constants as c
from pigeonhole import metrics_catalog as mc

if TYPE_CHECKING:
    from pigeonhole.classify.service import ClassifierService

CURRENT = "current"
CANDIDATE = "candidate"
CURRENT_EXECUTED_VERSION = "1"  # the Lambda version numbers a first canary deploy would have
CANDIDATE_EXECUTED_VERSION = "2"
LAMBDA_VERSION_ENV = "AWS_LAMBDA_FUNCTION_VERSION"  # Lambda sets it in every container of a published version


class VersionLoadError(RuntimeError):
    """A version's container could not initialise (its model failed to load or verify)."""


@dataclass
class ClassifierVersion:
    """One published version: its Lambda version number, model package and built (warm) service."""

    role: str  # CURRENT | CANDIDATE
    executed_version: str  # the ExecutedVersion dimension of its Lambda metrics
    model_dir: Path
    service: ClassifierService

    @property
    def model_version(self) -> str:
        """The manifest's version: the ModelVersion dimension of its own metrics."""
        return self.service.runtime.manifest.version


def load_version(role: str, executed_version: str, model_dir: Path) -> ClassifierVersion:
    """Build the classifier's service for one model package, as a container's init would (verify, load, wire).

    Reads the Lambda environment the emulator set (queues, bus, tables); only the model directory differs.
    A failure is counted by the handler's own `ModelLoadFailures` metric and raised as VersionLoadError.
    """
    from pigeonhole.classify import handler as handler_module
    from pigeonhole.config import Settings

    settings = dataclasses.replace(Settings.from_env(os.environ), model_dir=model_dir)
    os.environ[LAMBDA_VERSION_ENV] = executed_version  # a load failure is counted under this version
    try:
        with _quiet_retag():
            service = handler_module.build_service(settings)
    except Exception as exc:
        raise VersionLoadError(f"{role} ({model_dir}) could not load: {type(exc).__name__}: {exc}") from exc
    return ClassifierVersion(role, executed_version, model_dir, service)


@contextlib.contextmanager
def _quiet_retag() -> Iterator[None]:
    """Two versions share the handler's one Metrics object, so tagging one overwrites the other's
    ModelVersion default dimension on purpose; Powertools warns about each overwrite."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=f"Dimension '{mc.DIM_MODEL_VERSION}' has already been added")
        yield


def goes_to_candidate(batch_index: int, percent: int) -> bool:
    """The deterministic weighted split (see the module docstring)."""
    return (batch_index + 1) * percent // 100 > batch_index * percent // 100


class SplitHandler:
    """The poller's handler during a canary: picks a version per batch and runs the real handler with it."""

    def __init__(
        self,
        current: ClassifierVersion,
        candidate: ClassifierVersion,
        percent: int,
        on_route: Callable[[ClassifierVersion], None] | None = None,
    ) -> None:
        if not 0 <= percent <= 100:
            raise ValueError("percent must be within 0..100")
        self.current = current
        self.candidate = candidate
        self.percent = percent
        self.batches = 0
        self.last: ClassifierVersion | None = None  # the version of the batch just run (read by on_invocation)
        self._on_route = on_route

    def pick(self) -> ClassifierVersion:
        version = self.candidate if goes_to_candidate(self.batches, self.percent) else self.current
        self.batches += 1
        return version

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        from pigeonhole.classify import handler as handler_module
        from pigeonhole.entry import tag_model

        version = self.pick()
        self.last = version
        if self._on_route is not None:
            self._on_route(version)
        context.function_version = version.executed_version
        os.environ[LAMBDA_VERSION_ENV] = version.executed_version
        handler_module.service.reset(version.service)
        with _quiet_retag():
            tag_model(version.service.runtime.manifest, handler_module.logger, handler_module.metrics)
        return handler_module.handler(event, context)


def manifest_version(model_dir: Path) -> str | None:
    """The package's version without loading the model (None when there is no readable manifest)."""
    if not (model_dir / c.MANIFEST_FILE).is_file():
        return None
    try:
        from pigeonhole.model.manifest import load_manifest

        return load_manifest(model_dir).version
    except Exception:
        return None
