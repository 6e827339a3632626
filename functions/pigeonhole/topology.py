"""Every queue, bus, rule, table and bucket of Pigeonhole as plain data: one source for infra, local and tests.

Why plain data (the pattern of `pigeonhole.alarms`): the CDK stack (infra/) builds each spec, the
local runtime (`pigeonhole_tools.local.emulator`) provisions the same specs on moto, and contract
tests compare the synthesized template and the local system with them, so the three cannot drift
apart. Nothing here imports CDK or boto3.

Each spec carries its physical name (from `pigeonhole.naming.ResourceNames`), every setting that
differs from the service default, and `where` it exists: everywhere, only in the deployed stack
(the drift schedule targets a Lambda function, which the local runtime does not run) or only
locally (the output sink that stands in for the output bus's consumers). Values that follow from
function settings (visibility timeouts, the drift schedule) are computed from `Timing`.

Read it programmatically: ``build(names, timing)`` gives a `Topology`; ``queues(names)``,
``buses(names)``, ``rules(names)``, ``tables(names)`` and ``buckets(names)`` give one kind.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Literal

from pigeonhole import constants as c
from pigeonhole.naming import MAX_RECEIVE_COUNT, ResourceNames

# -- fixed settings (each used by the specs below; import them rather than restating a number) -------
DAY_S: Final = 24 * 3600
DLQ_RETENTION_S: Final = 14 * DAY_S  # SQS's maximum: time to look, fix and redrive
SOURCE_RETENTION_S: Final = 4 * DAY_S  # shorter than the DLQ's, so a redriven message never expires first
# Review and quarantine are read by people: as long as SQS allows while their DLQs still outlive them
# (a message keeps its first enqueue time when it moves to a DLQ, so the DLQ must keep it longer).
# Their age alarms (pigeonhole.alarms) warn and page well before a message expires.
HUMAN_QUEUE_RETENTION_S: Final = DLQ_RETENTION_S - DAY_S
SQS_DEFAULT_VISIBILITY_S: Final = 30
SQS_MAX_VISIBILITY_S: Final = 12 * 3600
# Lambda's SQS guidance: visibility timeout >= 6 x function timeout (+ the batching window).
VISIBILITY_TIMEOUT_FACTOR: Final = 6
HUMAN_QUEUE_VISIBILITY_S: Final = 300  # review/quarantine are read by people and tools, not by our functions
# SQS reuses a KMS data key for this long: fewer KMS requests (cost) for a bounded key-reuse window.
DATA_KEY_REUSE_S: Final = 3600
DRIFT_RETRY_ATTEMPTS: Final = 2
# Full bodies of quarantined events outlive their quarantine message, so a reader can always fetch one.
QUARANTINE_BODY_RETENTION_DAYS: Final = 30
S3_MAX_NAME: Final = 63
# `-<12-digit account>-<region>`; the longest region names (e.g. ap-southeast-5, us-gov-west-1) are 14.
_BUCKET_SUFFIX_MAX: Final = 1 + 12 + 1 + 14
BillingMode = Literal["PAY_PER_REQUEST", "PROVISIONED"]
BILLING_ON_DEMAND: Final[BillingMode] = "PAY_PER_REQUEST"  # traffic is bursty and idle costs nothing

# What a producer puts on the input bus by default (the demo and `local up` send this detail-type).
INPUT_SOURCE: Final = "pigeonhole.producer"
INPUT_DETAIL_TYPE: Final = "SupportMessage"


class Where(StrEnum):
    """Where a resource exists."""

    EVERYWHERE = "everywhere"
    DEPLOYED = "deployed"  # the CDK stack only
    LOCAL = "local"  # the local runtime (and test fixtures) only

    @property
    def deployed(self) -> bool:
        return self is not Where.LOCAL

    @property
    def local(self) -> bool:
        return self is not Where.DEPLOYED


@dataclass(frozen=True)
class Timing:
    """The function settings some resource settings follow from (infra's InfraConfig supplies its own)."""

    classifier_timeout_s: int = 30
    batching_window_s: int = 1
    feedback_timeout_s: int = 30
    feedback_batching_window_s: int = 1
    window_seconds: int = c.DEFAULT_WINDOW_SECONDS


def visibility_timeout_s(function_timeout_s: int, batching_window_s: int) -> int:
    """Lambda's SQS guidance as infra applies it: 6 x the function timeout + the batching window."""
    return VISIBILITY_TIMEOUT_FACTOR * function_timeout_s + batching_window_s


def rate_expression(seconds: int) -> str:
    """An EventBridge `rate(...)` for a whole number of minutes (what CDK's Schedule.rate renders)."""
    if seconds <= 0 or seconds % 60:
        raise ValueError(f"a schedule rate must be whole minutes, got {seconds} s")
    minutes = seconds // 60
    return f"rate({minutes} minute{'s' if minutes != 1 else ''})"


# -- specs ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Redrive:
    """SQS redrive: after `max_receive_count` receives a message moves to `dead_letter_queue` (a name)."""

    dead_letter_queue: str
    max_receive_count: int = MAX_RECEIVE_COUNT


@dataclass(frozen=True)
class QueueSpec:
    """One SQS queue. `id` is its attribute in ResourceNames; `kms`: encrypted with the data key."""

    id: str
    name: str
    retention_s: int
    visibility_timeout_s: int = SQS_DEFAULT_VISIBILITY_S
    redrive: Redrive | None = None
    dead_letter: bool = False  # only ever receives failures (a redrive, a rule target or a function)
    kms: bool = True
    where: Where = Where.EVERYWHERE


@dataclass(frozen=True)
class BusSpec:
    """An EventBridge bus. `kms`: encrypted with the data key (deployed; the local runtime has no key)."""

    id: str
    name: str
    kms: bool = True
    where: Where = Where.EVERYWHERE


@dataclass(frozen=True)
class RetryPolicy:
    """An EventBridge target's retry policy; events past either limit go to the target's DLQ."""

    maximum_retry_attempts: int
    maximum_event_age_s: int


# Every queue target of a rule: 8 retries, events older than 2 h are dead-lettered.
TARGET_RETRY: Final = RetryPolicy(maximum_retry_attempts=8, maximum_event_age_s=2 * 3600)


@dataclass(frozen=True)
class TargetSpec:
    """A rule's one target (a queue or a function, by physical name) with its retry policy and DLQ."""

    kind: Literal["queue", "function"]
    name: str
    dead_letter_queue: str
    retry: RetryPolicy


@dataclass(frozen=True)
class RuleSpec:
    """An EventBridge rule: on `bus` with an event `pattern`, or on the default bus with a `schedule`."""

    id: str
    name: str
    description: str
    target: TargetSpec
    bus: str | None = None  # None: the default bus (schedules)
    pattern: Mapping[str, Any] | None = field(default=None, hash=False)
    schedule: str | None = None
    where: Where = Where.EVERYWHERE


@dataclass(frozen=True)
class KeySpec:
    name: str
    type: Literal["S", "N", "B"] = "S"


@dataclass(frozen=True)
class IndexSpec:
    """A global secondary index (none yet: every read goes by the table's own key)."""

    name: str
    partition_key: KeySpec
    sort_key: KeySpec | None = None
    projection: Literal["ALL", "KEYS_ONLY"] = "ALL"


@dataclass(frozen=True)
class TableSpec:
    """One DynamoDB table. `kms`: encrypted with the data key; `pitr`: point-in-time recovery."""

    id: str
    name: str
    partition_key: KeySpec
    sort_key: KeySpec | None = None
    billing_mode: BillingMode = BILLING_ON_DEMAND
    ttl_attribute: str | None = c.TABLE_TTL_ATTRIBUTE
    pitr: bool = True
    kms: bool = True
    indexes: tuple[IndexSpec, ...] = ()
    where: Where = Where.EVERYWHERE

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in (self.partition_key, self.sort_key) if k is not None)


@dataclass(frozen=True)
class BucketSpec:
    """One S3 bucket, private, TLS-only, objects expiring after `expire_after_days`; `kms`: the data key.

    S3 names are global across every AWS account, so `name` is a base: the physical name is
    `physical_name(account, region)` in the stack and locally (moto's account) alike.
    """

    id: str
    name: str
    expire_after_days: int
    kms: bool = True
    where: Where = Where.EVERYWHERE

    def physical_name(self, account: str, region: str) -> str:
        return f"{self.name}-{account}-{region}"


Spec = QueueSpec | BusSpec | RuleSpec | TableSpec | BucketSpec


@dataclass(frozen=True)
class Topology:
    """All specs of one system; `deployed()` and `local()` keep those that exist there."""

    names: ResourceNames
    timing: Timing
    queues: tuple[QueueSpec, ...]
    buses: tuple[BusSpec, ...]
    rules: tuple[RuleSpec, ...]
    tables: tuple[TableSpec, ...]
    buckets: tuple[BucketSpec, ...] = ()

    def __iter__(self) -> Iterator[Spec]:
        specs: tuple[Spec, ...] = (*self.queues, *self.buses, *self.rules, *self.tables, *self.buckets)
        yield from specs

    def _where(self, place: Literal["deployed", "local"]) -> Topology:
        def here(spec: Spec) -> bool:
            return bool(getattr(spec.where, place))

        return Topology(
            self.names,
            self.timing,
            tuple(s for s in self.queues if here(s)),
            tuple(s for s in self.buses if here(s)),
            tuple(s for s in self.rules if here(s)),
            tuple(s for s in self.tables if here(s)),
            tuple(s for s in self.buckets if here(s)),
        )

    def deployed(self) -> Topology:
        """The specs the CDK stack builds."""
        return self._where("deployed")

    def local(self) -> Topology:
        """The specs the local runtime (and the test fixtures) provision."""
        return self._where("local")

    def queue(self, name: str) -> QueueSpec:
        """The queue spec with this physical name."""
        return _by_name(self.queues, name)

    def rule(self, name: str) -> RuleSpec:
        return _by_name(self.rules, name)

    def table(self, name: str) -> TableSpec:
        return _by_name(self.tables, name)

    def bus(self, name: str) -> BusSpec:
        return _by_name(self.buses, name)

    def bucket(self, name: str) -> BucketSpec:
        """The bucket spec with this base name."""
        return _by_name(self.buckets, name)


def _by_name(specs: tuple[Any, ...], name: str) -> Any:
    for spec in specs:
        if spec.name == name:
            return spec
    raise KeyError(f"no spec named {name!r} in this topology")


# -- the system --------------------------------------------------------------------------------------
def queues(names: ResourceNames, timing: Timing | None = None) -> tuple[QueueSpec, ...]:
    """Four work queues, each with its DLQ, and the DLQs of the rules' targets (plus the local sink)."""
    t = timing or Timing()
    n = names

    def work(
        id_: str, dlq_id: str, visibility: int, retention: int = SOURCE_RETENTION_S
    ) -> tuple[QueueSpec, QueueSpec]:
        dlq = QueueSpec(dlq_id, getattr(n, dlq_id), DLQ_RETENTION_S, dead_letter=True)
        queue = QueueSpec(id_, getattr(n, id_), retention, visibility, Redrive(dlq.name))
        return queue, dlq

    def dead_letter(id_: str, where: Where = Where.EVERYWHERE) -> QueueSpec:
        # A local-only queue has no data key to be encrypted with.
        return QueueSpec(id_, getattr(n, id_), DLQ_RETENTION_S, dead_letter=True, kms=where.deployed, where=where)

    return (
        *work("ingest_queue", "ingest_dlq", visibility_timeout_s(t.classifier_timeout_s, t.batching_window_s)),
        *work("review_queue", "review_dlq", HUMAN_QUEUE_VISIBILITY_S, HUMAN_QUEUE_RETENTION_S),
        *work("quarantine_queue", "quarantine_dlq", HUMAN_QUEUE_VISIBILITY_S, HUMAN_QUEUE_RETENTION_S),
        *work(
            "feedback_queue", "feedback_dlq", visibility_timeout_s(t.feedback_timeout_s, t.feedback_batching_window_s)
        ),
        dead_letter("input_rule_dlq"),
        dead_letter("label_rule_dlq"),
        dead_letter("drift_dlq", Where.DEPLOYED),
        # Local only: the output bus's consumers belong to other teams in AWS.
        QueueSpec("output_sink", n.output_sink, SOURCE_RETENTION_S, kms=False, where=Where.LOCAL),
        dead_letter("output_rule_dlq", Where.LOCAL),
    )


def buses(names: ResourceNames) -> tuple[BusSpec, ...]:
    """The input bus (events and labels in) and the output bus (EventClassified out)."""
    return (BusSpec("input_bus", names.input_bus), BusSpec("output_bus", names.output_bus))


def rules(names: ResourceNames, timing: Timing | None = None) -> tuple[RuleSpec, ...]:
    """EventBridge -> SQS (never -> Lambda): batching, partial failures, redrive and back-pressure come with it."""
    t = timing or Timing()
    n = names
    return (
        RuleSpec(
            "input_rule",
            n.input_rule,
            "Every event except labels goes to the ingest queue",
            TargetSpec("queue", n.ingest_queue, n.input_rule_dlq, TARGET_RETRY),
            bus=n.input_bus,
            pattern={"detail-type": [{"anything-but": [c.FEEDBACK_DETAIL_TYPE]}]},
        ),
        RuleSpec(
            "label_rule",
            n.label_rule,
            "Ground-truth labels go to the feedback queue",
            TargetSpec("queue", n.feedback_queue, n.label_rule_dlq, TARGET_RETRY),
            bus=n.input_bus,
            pattern={"detail-type": [c.FEEDBACK_DETAIL_TYPE]},
        ),
        RuleSpec(
            "drift_schedule",
            n.drift_schedule,
            "Close one drift window",
            # A report later than one window is stale: the next run covers it.
            TargetSpec("function", n.drift_function, n.drift_dlq, RetryPolicy(DRIFT_RETRY_ATTEMPTS, t.window_seconds)),
            schedule=rate_expression(t.window_seconds),
            where=Where.DEPLOYED,
        ),
        RuleSpec(
            "output_rule",
            n.output_rule,
            "Local only: copies EventClassified events to a queue so they can be read back",
            TargetSpec("queue", n.output_sink, n.output_rule_dlq, TARGET_RETRY),
            bus=n.output_bus,
            pattern={"source": [c.OUTPUT_SOURCE], "detail-type": [c.OUTPUT_DETAIL_TYPE]},
            where=Where.LOCAL,
        ),
    )


def tables(names: ResourceNames) -> tuple[TableSpec, ...]:
    """Window counters (pk + sk), sampled predictions (pk) and joined feedback (pk); TTL on expires_at."""
    pk = KeySpec(c.TABLE_PARTITION_KEY)
    return (
        TableSpec("windows_table", names.windows_table, pk, KeySpec(c.TABLE_SORT_KEY)),
        TableSpec("predictions_table", names.predictions_table, pk),
        TableSpec("feedback_table", names.feedback_table, pk),
    )


def buckets(names: ResourceNames) -> tuple[BucketSpec, ...]:
    """Full bodies of quarantined events too large to embed in their quarantine message (by sha256)."""
    return (BucketSpec("quarantine_bucket", names.quarantine_bucket, QUARANTINE_BODY_RETENTION_DAYS),)


def build(names: ResourceNames, timing: Timing | None = None) -> Topology:
    """The whole system for one prefix; check it before anyone builds from it."""
    t = timing or Timing()
    topology = Topology(names, t, queues(names, t), buses(names), rules(names, t), tables(names), buckets(names))
    _check(topology)
    return topology


def _check_buckets(topology: Topology, queue_names: Mapping[str, QueueSpec]) -> None:
    for b in topology.buckets:
        if len(b.name) + _BUCKET_SUFFIX_MAX > S3_MAX_NAME:
            raise ValueError(f"{b.name}: with account and region the bucket name could pass S3's {S3_MAX_NAME}")
        quarantine = queue_names.get(topology.names.quarantine_queue)
        if quarantine is not None and b.expire_after_days * DAY_S < quarantine.retention_s:
            raise ValueError(f"{b.name}: bodies must outlive the quarantine messages that point at them")


def _check(topology: Topology) -> None:
    """Every reference resolves, within the same `where`, and every limit holds."""
    queue_names = {q.name: q for q in topology.queues}
    bus_names = {b.name for b in topology.buses}
    seen: set[str] = set()
    for spec in topology:
        key = f"{type(spec).__name__}:{spec.name}"
        if key in seen:
            raise ValueError(f"{key} is defined twice")
        seen.add(key)
    for q in topology.queues:
        if not 0 <= q.visibility_timeout_s <= SQS_MAX_VISIBILITY_S:
            raise ValueError(f"{q.name}: visibility timeout {q.visibility_timeout_s} s is outside SQS's 0..12 h")
        if q.redrive is not None:
            dlq = queue_names[q.redrive.dead_letter_queue]
            if not dlq.dead_letter or dlq.retention_s < q.retention_s:
                raise ValueError(f"{q.name}: its DLQ must be a dead-letter queue that keeps messages longer")
    _check_buckets(topology, queue_names)
    for r in topology.rules:
        if (r.pattern is None) == (r.schedule is None):
            raise ValueError(f"{r.name}: a rule has either an event pattern or a schedule")
        if r.bus is not None and r.bus not in bus_names:
            raise ValueError(f"{r.name}: unknown bus {r.bus}")
        dlq = queue_names[r.target.dead_letter_queue]
        if not dlq.dead_letter:
            raise ValueError(f"{r.name}: target DLQ {dlq.name} is not a dead-letter queue")
        if r.target.kind == "queue" and queue_names[r.target.name].where not in (r.where, Where.EVERYWHERE):
            raise ValueError(f"{r.name}: target {r.target.name} does not exist where the rule does")
