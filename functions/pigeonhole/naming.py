"""Every physical name of one Pigeonhole system, for the CDK stack, the local runtime and the tests alike.

One class, one prefix: infra's former `StackNames` and the local runtime's former `LocalNames` are
merged here, so a name is spelled once. Attribute names double as `pigeonhole.alarms.Binding`
values (alarm dimensions resolve with ``getattr(names, binding.value)``) and as the `id` of the
specs in `pigeonhole.topology`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Final

# The name of the classifier's alias: the ingest queue's event source mapping invokes it.
ALIAS_NAME: Final = "live"
# The ingest queue's redrive policy: after this many receives a message goes to the DLQ.
MAX_RECEIVE_COUNT: Final = 5
# Lambda's SQS event source mapping never hands more than this many records to one invocation here.
MAX_BATCH_SIZE: Final = 10


def _named(suffix: str) -> Any:
    """A name field: `<prefix>-<suffix>`, filled in from the prefix (not a constructor argument)."""
    return field(init=False, repr=False, metadata={"suffix": suffix})


@dataclass(frozen=True)
class ResourceNames:
    """Physical names derived from one prefix (one deployment = one prefix)."""

    prefix: str = "pigeonhole"
    # Queues.
    ingest_queue: str = _named("ingest")
    ingest_dlq: str = _named("ingest-dlq")
    review_queue: str = _named("review")
    review_dlq: str = _named("review-dlq")
    quarantine_queue: str = _named("quarantine")
    quarantine_dlq: str = _named("quarantine-dlq")
    feedback_queue: str = _named("feedback")
    feedback_dlq: str = _named("feedback-dlq")
    input_rule_dlq: str = _named("input-rule-dlq")  # the input rule's target DLQ
    label_rule_dlq: str = _named("label-rule-dlq")  # the label rule's target DLQ
    drift_dlq: str = _named("drift-dlq")  # drift schedule target DLQ + the drift function's on-failure destination
    output_sink: str = _named("output-sink")  # local only: stands in for the output bus's consumers
    output_rule_dlq: str = _named("output-sink-rule-dlq")  # local only
    # Buses and rules.
    input_bus: str = _named("input")
    output_bus: str = _named("output")
    input_rule: str = _named("input-to-ingest")
    label_rule: str = _named("labels-to-feedback")
    drift_schedule: str = _named("drift-schedule")
    output_rule: str = _named("output-to-sink")  # local only: output bus -> output sink
    # Tables.
    windows_table: str = _named("windows")
    predictions_table: str = _named("predictions")
    feedback_table: str = _named("feedback")
    # Buckets (a base name: S3 names are global, so the physical name adds account and region).
    quarantine_bucket: str = _named("quarantine-bodies")
    # Functions, topics, dashboard.
    classifier_function: str = _named("classifier")
    drift_function: str = _named("drift")
    feedback_function: str = _named("feedback")
    golden_hook_function: str = _named("golden-hook")  # CodeDeploy BeforeAllowTraffic hook of the classifier
    oncall_topic: str = _named("oncall")
    ticket_topic: str = _named("tickets")
    dashboard: str = _named("operations")

    def __post_init__(self) -> None:
        for item in fields(self):
            if "suffix" in item.metadata:
                object.__setattr__(self, item.name, f"{self.prefix}-{item.metadata['suffix']}")

    @property
    def classifier_alias_resource(self) -> str:
        """The `Resource` dimension of the alias's Lambda metrics."""
        return f"{self.classifier_function}:{ALIAS_NAME}"

    @property
    def data_key_alias(self) -> str:
        return f"alias/{self.prefix}-data"
