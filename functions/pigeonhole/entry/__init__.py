"""What every Lambda entry point shares: built once, tagged with its model, one client policy, one parser.

- ``Lazy``: the service built on the first invocation (never at import), with ``reset`` for tests.
- ``AwsClients``: boto3 clients with the one timeout and retry policy.
- ``tag_model`` / ``model_load``: model name, version and sha256 on every log line, the version as a
  default metric dimension, and the model-load-failure metric of the function's service.
- ``partial_batch_response``: SQS partial batch responses that never raise on an all-failed batch.
- ``parse_document``: a record body → the JSON document (EventBridge envelopes unwrapped) or a coded reason.
- ``trace_lambda_handler``: Powertools' Tracer around the handler, the X-Ray SDK imported only when tracing is on.
- ``warm_during_init``: under provisioned concurrency or SnapStart, build the service during init.
"""

from pigeonhole.entry.batch import partial_batch_response
from pigeonhole.entry.clients import BOTO_CONFIG, AwsClients
from pigeonhole.entry.envelope import Document, EnvelopeReasonCode, Rejection, parse_document
from pigeonhole.entry.lazy import Lazy
from pigeonhole.entry.telemetry import model_load, tag_model
from pigeonhole.entry.tracing import trace_lambda_handler, tracing_enabled
from pigeonhole.entry.warm import PREWARMED_INIT_TYPES, warm_during_init

__all__ = [
    "BOTO_CONFIG",
    "PREWARMED_INIT_TYPES",
    "AwsClients",
    "Document",
    "EnvelopeReasonCode",
    "Lazy",
    "Rejection",
    "model_load",
    "parse_document",
    "partial_batch_response",
    "tag_model",
    "trace_lambda_handler",
    "tracing_enabled",
    "warm_during_init",
]
