"""What a fault run does: how many events, which faults at what rate, the seed, and the emulation shortcuts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class FaultKind(StrEnum):
    """Transient failures of the environment, as AWS reports them to botocore."""

    THROTTLING = "throttling"  # 400 ThrottlingException: botocore retries it
    SERVER_ERROR = "server_error"  # 500 InternalFailure / 503 ServiceUnavailable: botocore retries it
    TIMEOUT = "timeout"  # the request never got an answer (before or after it landed): botocore retries it
    TRANSACTION_CONFLICT = "transaction_conflict"  # DynamoDB only: a cancelled transaction / conflicting write
    ACCESS_DENIED = "access_denied"  # 400 AccessDeniedException (IAM propagating): not retried by botocore


ALL_KINDS: tuple[FaultKind, ...] = tuple(FaultKind)


@dataclass(frozen=True)
class FaultPlan:
    """Each HTTP attempt a function's client makes fails with probability ``rate``, the kind drawn uniformly.

    ``landed_fraction`` of the timeouts happen *after* the request reached moto (the write landed and
    the answer was lost), which is what forces a retry after publishing. ``backoff_scale`` shortens
    botocore's retry sleeps (its decisions are unchanged): emulation speed only.
    """

    rate: float = 0.1
    seed: int = 8
    kinds: tuple[FaultKind, ...] = ALL_KINDS
    landed_fraction: float = 0.5
    backoff_scale: float = 0.02

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate < 1.0:
            raise ValueError("rate must be within [0, 1)")
        if not self.kinds:
            raise ValueError("at least one fault kind is needed")
        if not 0.0 <= self.landed_fraction <= 1.0 or not 0.0 < self.backoff_scale <= 1.0:
            raise ValueError("landed_fraction must be within [0, 1] and backoff_scale within (0, 1]")


@dataclass(frozen=True)
class RunConfig:
    """One fault run through moto (server mode on loopback) and the emulated event source mapping."""

    events: int = 10_000
    plan: FaultPlan = field(default_factory=FaultPlan)
    poison: int = 10  # events that fail every time (a handler bug): they must reach the DLQ after 5 receives
    invalid_fraction: float = 0.03  # events that break the input contract: quarantined, never retried
    bus_fraction: float = 0.2  # sent through the input bus (EventBridge rule -> ingest queue), the rest via SQS
    label_fraction: float = 0.2  # classified events that get a label on the feedback queue
    duplicate_label_fraction: float = 0.1  # of those, sent twice (a producer's duplicate): counted once
    max_backlog: int = 30  # the producer waits while the ingest queue holds more than this
    # Drift runs until one succeeds (the schedule retries a failed run). Since the per-batch window items,
    # a run merges every closed window first (one query per shard, one put per window), so at 30 % faults per
    # attempt a whole run succeeds less often: 25 runs were once not enough (2026-12-04).
    drift_attempts: int = 100
    max_seconds: float = 1_800.0  # safety net against a stuck run, not a performance assertion
    prefix: str = "faults"
    model_dir: Path | None = None
    log_file: Path | None = None  # the handlers' JSON logs and EMF metrics (default: discarded)

    def __post_init__(self) -> None:
        if self.events < 1 or self.poison < 0 or self.poison > self.events:
            raise ValueError("events must be >= 1 and poison within [0, events]")
        for name in ("invalid_fraction", "bus_fraction", "label_fraction", "duplicate_label_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["plan"]["kinds"] = [str(k) for k in self.plan.kinds]
        out["model_dir"] = str(self.model_dir) if self.model_dir else None
        out["log_file"] = str(self.log_file) if self.log_file else None
        return out
