"""The partial-batch response of an SQS event source mapping: a record's failure is never a function error.

Powertools' BatchProcessor raises BatchProcessingError when *every* record failed (its default
``raise_on_entire_batch_failure=True``), so a one-record batch that failed for a transient reason
counted as a function error and fed the Errors metric and the canary's rollback alarm. Here a record
whose handler raised one of the ``retryable`` errors (a downstream write that failed: ``PublishError``)
is a batch item failure however many of its neighbours failed too: SQS delivers exactly those again,
and the function's errors count only crashes. A crash is still a crash: when every record failed and
one of them failed with anything else (a bug), the batch raises as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pigeonhole.exceptions import PublishError


def partial_batch_response(
    event: dict[str, Any],
    record_handler: Callable[[SQSRecord], Any],
    context: LambdaContext | None,
    retryable: tuple[type[BaseException], ...] = (PublishError,),
) -> PartialItemFailureResponse:
    """Run ``record_handler`` (Powertools calls it as ``record_handler(record=...)``) over each record.

    A record whose handler raises is a batch item failure; an all-failed batch raises only if one of its
    failures is not ``retryable``.
    """
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    everything_failed = bool(processor.fail_messages) and not processor.success_messages
    if everything_failed and any(not isinstance(exc, retryable) for _, exc, _ in processor.exceptions):
        raise BatchProcessingError(
            msg=f"All {len(processor.fail_messages)} records failed, not all for a retryable reason.",
            child_exceptions=processor.exceptions,
        )
    return response
