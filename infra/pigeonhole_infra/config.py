"""Typed, validated deployment configuration, read from CDK context (account-agnostic, no AWS calls).

Sources, later ones winning: the dataclass defaults, the `pigeonhole` object in cdk.json's context,
a JSON file named by `-c pigeonhole:config=path.json`, then single fields as
`-c pigeonhole:<field>=<value>` (strings from the command line are coerced to the field's type).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args, get_origin

from pigeonhole import alarms as alarm_defs
from pigeonhole import constants as c
from pigeonhole import topology as topo
from pigeonhole.alarms import RUNBOOK_PATH
from pigeonhole.capture import CapturePolicy
from pigeonhole.naming import MAX_BATCH_SIZE, ResourceNames

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR: Final = REPO_ROOT / "functions"
DEFAULT_MODEL_DIR: Final = REPO_ROOT / "layers" / "model"
CONTEXT_KEY: Final = "pigeonhole"

Architecture = Literal["x86_64", "arm64"]
WarmMode = Literal["provisioned", "snapstart", "none"]
PythonVersion = Literal["3.12", "3.13"]
# "required": synthesis fails unless an on-call endpoint is set; "none": a stack that may page nobody
# (a sandbox), said explicitly. Not `str | None`: the string "none" must not read as "unset".
OnCall = Literal["required", "none"]

# Environment variables of the monitoring tables: the names come from constants.py (one source).
ENV_WINDOWS_TABLE: Final = c.ENV_WINDOWS_TABLE
ENV_PREDICTIONS_TABLE: Final = c.ENV_PREDICTIONS_TABLE
ENV_FEEDBACK_TABLE: Final = c.ENV_FEEDBACK_TABLE
ENV_POWERTOOLS_LOG_LEVEL: Final = "POWERTOOLS_LOG_LEVEL"
ENV_POWERTOOLS_TRACE_DISABLED: Final = "POWERTOOLS_TRACE_DISABLED"

# Lambda handlers (module path inside the `pigeonhole` package).
CLASSIFIER_HANDLER: Final = "pigeonhole.classify.handler.handler"
DRIFT_HANDLER: Final = "pigeonhole.drift.handler.handler"
FEEDBACK_HANDLER: Final = "pigeonhole.feedback.handler.handler"
GOLDEN_HOOK_HANDLER: Final = "pigeonhole.hook.handler.handler"
HOOK_RESERVED: Final = 1  # the pre-traffic hook: one deployment at a time

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,23}$")


# Direct invocations of the classifier beyond its event source mapping (a deployment hook, a person).
CLASSIFIER_HEADROOM: Final = 5
# Lambda keeps at least 100 of an account's concurrency unreserved; the default quota is 1,000.
MAX_RESERVED_TOTAL: Final = 900

# Keeps every alarm description (at most ~250 characters before the link) inside CloudWatch's 1,024.
MAX_RUNBOOK_URL: Final = 512

ONCALL_MISSING: Final = (
    "no on-call endpoint: pages (DLQ arrivals, error rates, silences) would reach nobody.\n"
    "  Set oncall_email or oncall_https_url, e.g. -c pigeonhole:oncall_email=oncall@example.org\n"
    "  (or in a -c pigeonhole:config=prod.json file), or say explicitly that this stack pages nobody\n"
    "  (a sandbox): -c pigeonhole:oncall=none. See docs/deploy.md, Parameters."
)


class ConfigError(ValueError):
    """The deployment configuration is invalid; the message names the field and the rule."""


@dataclass(frozen=True)
class InfraConfig:
    """Everything a deployment may choose. Defaults are a small, warm, production-shaped stack."""

    prefix: str = "pigeonhole"
    stack_name: str = "Pigeonhole"
    # Classifier function.
    architecture: Architecture = "x86_64"
    python_version: PythonVersion = "3.12"
    memory_mb: int = 1024
    timeout_s: int = 30
    ort_threads: int = 1
    log_level: str = "INFO"
    # X-Ray: Active tracing plus Powertools' Tracer in every function (its SDK costs init time, see
    # docs/deploy.md "Tracing"); False = no tracing, no X-Ray permission, POWERTOOLS_TRACE_DISABLED=true.
    tracing: bool = True
    review_threshold: float | None = None  # None: the manifest's threshold
    # SQS event source mapping on the alias.
    batch_size: int = MAX_BATCH_SIZE
    batching_window_s: int = 1
    max_concurrency: int = 20
    # Warm capacity: provisioned concurrency with target tracking, SnapStart, or neither.
    warm_mode: WarmMode = "provisioned"
    provisioned_min: int = 1
    provisioned_max: int = 20  # = max_concurrency: warm capacity can cover every concurrent batch
    provisioned_utilization: float = 0.5
    # Canary deployments (CodeDeploy) of the alias; 0 percent shifts all at once.
    canary_percent: int = c.DEFAULT_CANARY_PERCENT
    # Long enough for every rollback alarm to fire (see canary_seconds_needed and docs/deploy.md).
    canary_minutes: int = c.DEFAULT_CANARY_MINUTES
    # Pre-traffic hook: the new version must label the package's golden set at least this accurately
    # (true labels). The hook uses max(this, the manifest's min_accuracy): a broken build cannot lower it.
    min_golden_accuracy: float = c.DEFAULT_MIN_GOLDEN_ACCURACY
    golden_hook_timeout_s: int = 120
    # Drift and feedback functions.
    window_seconds: int = 300
    # Partitions a window's batch items spread over (the shard is in the partition key); every function
    # gets the same value. Raise it only (a drift run reads shards 0..n-1): docs/monitoring.md.
    window_shards: int = 1
    drift_memory_mb: int = 512
    drift_timeout_s: int = 60
    feedback_memory_mb: int = 512
    feedback_timeout_s: int = 30
    feedback_batch_size: int = 10
    feedback_batching_window_s: int = 1
    feedback_max_concurrency: int = 2  # the feedback mapping's cap (labels are few; the classifier matters)
    # Reserved concurrency: the classifier's is also the ceiling of its provisioned concurrency; None
    # derives it (see classifier_reserved). The companions are capped so they can never starve it.
    classifier_reserved_concurrency: int | None = None
    drift_reserved_concurrency: int = 2  # one run per window, plus a retry that may overlap it
    # Notifications: an on-call endpoint is required unless `oncall` is "none" (see require_oncall).
    oncall: OnCall = "required"
    oncall_email: str | None = None
    oncall_https_url: str | None = None
    ticket_email: str | None = None
    # Where each alarm's description links (`<runbook_url>#<alarm suffix>`): the address the team reads
    # the runbook at, e.g. the repository's docs/runbook.md at the deployed commit. The default is that
    # path inside the repository.
    runbook_url: str = RUNBOOK_PATH
    # Prediction capture (every function gets the same policy): the share of review-routed and of
    # auto-routed events whose prediction is kept for the label join (docs/monitoring.md).
    capture_review_rate: float = 1.0
    capture_auto_rate: float = 0.1
    # ClassPredicted per label (one custom metric per label and model version; off: the class mix is in
    # the drift report and its per-window metrics). See docs/deploy.md.
    per_label_metrics: bool = False
    # Data.
    log_retention_days: int = 30
    destroy_data_on_teardown: bool = False  # True: `cdk destroy` also deletes tables and the key
    model_dir: str = str(DEFAULT_MODEL_DIR)
    tags: dict[str, str] = field(default_factory=lambda: {"project": "pigeonhole"})

    def __post_init__(self) -> None:
        self._validate()

    # -- derived values ----------------------------------------------------------------------------
    @property
    def names(self) -> ResourceNames:
        return ResourceNames(self.prefix)

    @property
    def capture(self) -> CapturePolicy:
        """The prediction-capture policy every function is configured with."""
        return CapturePolicy(review_rate=self.capture_review_rate, auto_rate=self.capture_auto_rate)

    @property
    def timing(self) -> topo.Timing:
        """The function settings the topology's visibility timeouts and drift schedule follow from."""
        return topo.Timing(
            classifier_timeout_s=self.timeout_s,
            batching_window_s=self.batching_window_s,
            feedback_timeout_s=self.feedback_timeout_s,
            feedback_batching_window_s=self.feedback_batching_window_s,
            window_seconds=self.window_seconds,
        )

    @property
    def topology(self) -> topo.Topology:
        """What this deployment builds: the specs of `pigeonhole.topology` that exist in AWS."""
        return topo.build(self.names, self.timing).deployed()

    @property
    def ingest_visibility_timeout_s(self) -> int:
        return topo.visibility_timeout_s(self.timeout_s, self.batching_window_s)

    @property
    def feedback_visibility_timeout_s(self) -> int:
        return topo.visibility_timeout_s(self.feedback_timeout_s, self.feedback_batching_window_s)

    @property
    def classifier_reserved(self) -> int:
        """Reserved concurrency of the classifier: every batch the mapping may run at once, all warm
        capacity, plus CLASSIFIER_HEADROOM for direct invocations (a deployment hook, an operator)."""
        if self.classifier_reserved_concurrency is not None:
            return self.classifier_reserved_concurrency
        warm = self.provisioned_max if self.warm_mode == "provisioned" else 0
        return max(self.max_concurrency, warm) + CLASSIFIER_HEADROOM

    @property
    def feedback_reserved(self) -> int:
        """The feedback function's reserved concurrency: exactly what its mapping may use (Lambda's
        guidance: reserved below the mapping's maximum concurrency throttles the mapping)."""
        return self.feedback_max_concurrency

    @property
    def reserved_total(self) -> int:
        return self.classifier_reserved + self.drift_reserved_concurrency + self.feedback_reserved + HOOK_RESERVED

    @property
    def oncall_endpoints(self) -> tuple[str, ...]:
        """Who a page reaches: the configured e-mail and HTTPS endpoints."""
        return tuple(e for e in (self.oncall_email, self.oncall_https_url) if e)

    def require_oncall(self) -> None:
        """Refuse a stack whose pages reach nobody, unless the config says so (`oncall: none`).

        Checked when the stack is built, not in `_validate`: a config without an endpoint is still a
        value tools and tests may derive names and timings from; only a stack must page someone.
        """
        if self.oncall == "required" and not self.oncall_endpoints:
            raise ConfigError(ONCALL_MISSING)

    @property
    def canary_enabled(self) -> bool:
        return self.canary_percent > 0

    @property
    def model_path(self) -> Path:
        path = Path(self.model_dir)
        return path if path.is_absolute() else REPO_ROOT / path

    # -- loading -----------------------------------------------------------------------------------
    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> InfraConfig:
        """Build from a CDK context mapping (see the module docstring for the order of sources)."""
        values: dict[str, Any] = {}
        base = context.get(CONTEXT_KEY)
        if isinstance(base, str):  # `-c pigeonhole='{"...": ...}'` arrives as a string
            base = json.loads(base)
        if base is not None:
            if not isinstance(base, Mapping):
                raise ConfigError(f"context {CONTEXT_KEY!r} must be an object, got {type(base).__name__}")
            values.update(base)
        config_file = context.get(f"{CONTEXT_KEY}:config")
        if config_file:
            values.update(json.loads(Path(str(config_file)).read_text(encoding="utf-8")))
        for key, value in context.items():
            if key.startswith(f"{CONTEXT_KEY}:") and key != f"{CONTEXT_KEY}:config":
                values[key.split(":", 1)[1]] = value
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> InfraConfig:
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**{key: _coerce(key, value, hints[key]) for key, value in values.items()})

    # -- validation --------------------------------------------------------------------------------
    def _validate(self) -> None:
        errors: list[str] = []

        def need(ok: bool, message: str) -> None:
            if not ok:
                errors.append(message)

        need(bool(_PREFIX.match(self.prefix)), "prefix: lower-case letters, digits and '-', 1-24 chars, letter first")
        need(self.architecture in get_args(Architecture), f"architecture: one of {get_args(Architecture)}")
        need(self.python_version in get_args(PythonVersion), f"python_version: one of {get_args(PythonVersion)}")
        need(self.warm_mode in get_args(WarmMode), f"warm_mode: one of {get_args(WarmMode)}")
        need(self.oncall in get_args(OnCall), f"oncall: one of {get_args(OnCall)}")
        need(128 <= self.memory_mb <= 10_240, "memory_mb: 128..10240")
        need(1 <= self.timeout_s <= 900, "timeout_s: 1..900")
        need(1 <= self.ort_threads <= 6, "ort_threads: 1..6 (Lambda has at most 6 vCPUs)")
        need(self.log_level in {"DEBUG", "INFO", "WARNING", "ERROR"}, "log_level: DEBUG, INFO, WARNING or ERROR")
        need(self.review_threshold is None or 0.0 <= self.review_threshold <= 1.0, "review_threshold: within [0, 1]")
        need(0.0 <= self.capture_review_rate <= 1.0, "capture_review_rate: within [0, 1]")
        need(0.0 <= self.capture_auto_rate <= 1.0, "capture_auto_rate: within [0, 1]")
        need(1 <= self.batch_size <= MAX_BATCH_SIZE, f"batch_size: 1..{MAX_BATCH_SIZE}")
        need(0 <= self.batching_window_s <= 300, "batching_window_s: 0..300")
        need(2 <= self.max_concurrency <= 1000, "max_concurrency: 2..1000 (the ESM's limits)")
        need(
            self.ingest_visibility_timeout_s <= topo.SQS_MAX_VISIBILITY_S,
            "timeout_s: 6 x timeout + batching window exceeds SQS's 12 h visibility timeout",
        )
        need(1 <= self.provisioned_min <= self.provisioned_max, "provisioned_min/max: 1 <= min <= max")
        need(0.1 <= self.provisioned_utilization <= 0.9, "provisioned_utilization: 0.1..0.9")
        need(0 <= self.canary_percent < 100, "canary_percent: 0..99 (0 shifts all at once)")
        need(1 <= self.canary_minutes <= 2880, "canary_minutes: 1..2880")
        need(
            self.canary_percent == 0 or self.canary_minutes * 60 >= alarm_defs.canary_seconds_needed(),
            f"canary_minutes: {self.canary_minutes} min is shorter than the "
            f"{math.ceil(alarm_defs.canary_seconds_needed() / 60)} min the rollback alarms need to fire "
            "(datapoints x period + metric delay + one evaluation; docs/deploy.md, Canary timing): "
            "the canary would promote before they could see a failing version",
        )
        need(0.0 <= self.min_golden_accuracy <= 1.0, "min_golden_accuracy: within [0, 1]")
        need(30 <= self.golden_hook_timeout_s <= 900, "golden_hook_timeout_s: 30..900")
        need(self.window_seconds >= 60 and self.window_seconds % 60 == 0, "window_seconds: whole minutes, >= 60")
        need(1 <= self.window_shards <= 100, "window_shards: 1..100")
        need(128 <= self.drift_memory_mb <= 10_240, "drift_memory_mb: 128..10240")
        need(1 <= self.drift_timeout_s <= 900, "drift_timeout_s: 1..900")
        need(128 <= self.feedback_memory_mb <= 10_240, "feedback_memory_mb: 128..10240")
        need(1 <= self.feedback_timeout_s <= 900, "feedback_timeout_s: 1..900")
        need(1 <= self.feedback_batch_size <= MAX_BATCH_SIZE, f"feedback_batch_size: 1..{MAX_BATCH_SIZE}")
        need(0 <= self.feedback_batching_window_s <= 300, "feedback_batching_window_s: 0..300")
        need(2 <= self.feedback_max_concurrency <= 1000, "feedback_max_concurrency: 2..1000 (the ESM's limits)")
        need(1 <= self.drift_reserved_concurrency <= 10, "drift_reserved_concurrency: 1..10")
        warm = self.provisioned_max if self.warm_mode == "provisioned" else 0
        need(
            self.classifier_reserved >= max(self.max_concurrency, warm),
            "classifier_reserved_concurrency: at least max_concurrency and provisioned_max (Lambda refuses "
            "provisioned concurrency above the reserved, and the mapping would be throttled)",
        )
        need(
            self.reserved_total <= MAX_RESERVED_TOTAL,
            f"reserved concurrency: {self.reserved_total} in total exceeds {MAX_RESERVED_TOTAL} (Lambda keeps 100 of "
            "the default 1,000 unreserved; raise the account quota and this check together)",
        )
        for name in ("oncall_email", "ticket_email"):
            value = getattr(self, name)
            need(value is None or bool(_EMAIL.match(value)), f"{name}: not an e-mail address")
        need(
            self.oncall_https_url is None or self.oncall_https_url.startswith("https://"),
            "oncall_https_url: must start with https://",
        )
        need(
            0 < len(self.runbook_url) <= MAX_RUNBOOK_URL and not set(self.runbook_url) & set("#? \t\n"),
            f"runbook_url: 1..{MAX_RUNBOOK_URL} characters, no '#', '?' or whitespace (each alarm appends #<suffix>)",
        )
        need(
            self.log_retention_days in _LOG_RETENTION_DAYS,
            f"log_retention_days: one of {sorted(_LOG_RETENTION_DAYS)}",
        )
        if errors:
            raise ConfigError("invalid Pigeonhole configuration:\n  " + "\n  ".join(errors))


# The retention values CloudWatch Logs accepts.
_LOG_RETENTION_DAYS: Final = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)


def _coerce(key: str, value: Any, hint: Any) -> Any:  # noqa: PLR0912 (one branch per type)
    """Turn a context value (often a string from `-c`) into the field's type; raise ConfigError otherwise."""
    origin = get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in {"", "none", "null"}):
            return None
        return _coerce(key, value, options[0])
    if origin is Literal:
        return str(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return value.lower() in {"true", "1", "yes"}
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            number = hint(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}") from exc
        if hint is int and isinstance(value, float) and value != number:
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return number
    if hint is str:
        return str(value)
    if origin is dict:
        parsed = json.loads(value) if isinstance(value, str) else value
        if not isinstance(parsed, Mapping):
            raise ConfigError(f"{key}: expected an object")
        return {str(k): str(v) for k, v in parsed.items()}
    raise ConfigError(f"{key}: unsupported type {hint!r}")
