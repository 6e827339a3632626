"""moto in server mode on loopback, provisioned from the same specs as the CDK stack.

Every queue, bus, rule and table comes from `pigeonhole.topology` (names from
`pigeonhole.naming.ResourceNames`), so the local system and the deployed one describe the same
thing: `provision` creates them with `pigeonhole_tools.local.provisioning.create_topology`, which
in-process moto (tests, the drift harness) uses too. Clients made here carry
fake credentials and refuse any endpoint that is not on loopback: nothing in the local runtime can
reach AWS.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import socket
import threading
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config

from pigeonhole import constants as c
from pigeonhole import naming
from pigeonhole import topology as topo
from pigeonhole.naming import ResourceNames
from pigeonhole_tools.local.provisioning import Provisioned, QueueRef, create_topology, with_ingest_visibility

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 4747  # `local up`; tests and the demo take a free port (0)
DEFAULT_REGION = "us-east-1"
# Shared values other local modules import from here (defined in pigeonhole.naming / pigeonhole.topology).
ALIAS_NAME = naming.ALIAS_NAME  # the event source mapping invokes this alias
INPUT_SOURCE = topo.INPUT_SOURCE  # what the demo's and `local up`'s producers put on the input bus
INPUT_DETAIL_TYPE = topo.INPUT_DETAIL_TYPE
_TIMING = topo.Timing()  # the classifier's defaults, as infra's InfraConfig sets them
DEFAULT_FUNCTION_TIMEOUT = _TIMING.classifier_timeout_s  # seconds; the classifier's Lambda timeout
DEFAULT_BATCHING_WINDOW = _TIMING.batching_window_s  # seconds; the event source mapping's batching window
DEFAULT_VISIBILITY_TIMEOUT = topo.visibility_timeout_s(DEFAULT_FUNCTION_TIMEOUT, DEFAULT_BATCHING_WINDOW)
DEFAULT_MEMORY_MB = 1024
FAKE_CREDENTIAL = "testing"  # moto's conventional fake key, not a secret

# Variables that could point a client at a real account or endpoint; unset for the local runtime.
_UNSAFE_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)


def offline_environment(region: str = DEFAULT_REGION, endpoint: str | None = None) -> dict[str, str]:
    """Fake credentials, a region, no instance metadata and (optionally) the moto endpoint for every client."""
    env = {
        "AWS_ACCESS_KEY_ID": FAKE_CREDENTIAL,
        "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIAL,
        "AWS_SESSION_TOKEN": FAKE_CREDENTIAL,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if endpoint is not None:
        env["AWS_ENDPOINT_URL"] = require_loopback(endpoint)
    return env


def unsafe_variables(env: Mapping[str, str]) -> list[str]:
    """Names present in `env` that could redirect a client away from moto (profiles, per-service endpoints)."""
    found = [name for name in _UNSAFE_VARIABLES if name in env]
    found += [name for name in env if name.startswith("AWS_ENDPOINT_URL_")]
    return found


def apply_offline_environment(
    env: MutableMapping[str, str], region: str = DEFAULT_REGION, endpoint: str | None = None
) -> None:
    """Make `env` (normally os.environ of a CLI process) safe: fake credentials, loopback endpoint only."""
    for name in unsafe_variables(env):
        del env[name]
    env.update(offline_environment(region, endpoint))


def require_loopback(endpoint: str) -> str:
    """Refuse any endpoint that is not on this machine, so a typo cannot send traffic to AWS."""
    host = urlparse(endpoint).hostname
    if host is None:
        raise ValueError(f"endpoint {endpoint!r} has no host")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"endpoint {endpoint!r} is not on loopback; the local runtime never leaves this host")
    return endpoint.rstrip("/")


def _config(max_attempts: int) -> Config:
    return Config(retries={"max_attempts": max_attempts, "mode": "standard"}, connect_timeout=3, read_timeout=30)


def _session(region: str) -> boto3.session.Session:
    # Explicit fake credentials: the default chain (profiles, metadata) is never consulted.
    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIAL,
        aws_secret_access_key=FAKE_CREDENTIAL,
        aws_session_token=FAKE_CREDENTIAL,
        region_name=region,
    )


def sqs_client(endpoint: str, region: str = DEFAULT_REGION, max_attempts: int = 3) -> SQSClient:
    """An SQS client bound to the moto endpoint (tests pass max_attempts=1: botocore retries moto's 500s)."""
    return _session(region).client("sqs", endpoint_url=require_loopback(endpoint), config=_config(max_attempts))


def dynamodb_client(endpoint: str, region: str = DEFAULT_REGION, max_attempts: int = 3) -> DynamoDBClient:
    """A DynamoDB client bound to the moto endpoint."""
    return _session(region).client("dynamodb", endpoint_url=require_loopback(endpoint), config=_config(max_attempts))


def s3_client(endpoint: str, region: str = DEFAULT_REGION, max_attempts: int = 3) -> S3Client:
    """An S3 client bound to the moto endpoint."""
    return _session(region).client("s3", endpoint_url=require_loopback(endpoint), config=_config(max_attempts))


def events_client(endpoint: str, region: str = DEFAULT_REGION, max_attempts: int = 3) -> EventBridgeClient:
    """An EventBridge client bound to the moto endpoint."""
    return _session(region).client("events", endpoint_url=require_loopback(endpoint), config=_config(max_attempts))


@dataclass(frozen=True)
class LocalResources:
    """Every URL and ARN of one provisioned local system; shared by the demo, `local up` and the e2e tests."""

    endpoint: str
    region: str
    names: ResourceNames
    visibility_timeout: int
    ingest: QueueRef
    ingest_dlq: QueueRef
    review: QueueRef
    quarantine: QueueRef
    output_sink: QueueRef
    input_rule_dlq: QueueRef
    output_rule_dlq: QueueRef
    input_bus_name: str
    input_bus_arn: str
    input_rule_name: str
    output_bus_name: str
    output_bus_arn: str
    output_rule_name: str
    windows_table: str
    predictions_table: str
    quarantine_bucket: str  # physical name: full bodies of quarantined events too large to embed
    function_name: str
    topology: topo.Topology  # the local specs this system was provisioned from
    provisioned: Provisioned  # every queue, bus, rule and table it made, by physical name

    @property
    def dead_letter_queues(self) -> list[QueueRef]:
        """Where undeliverable or poison events end up; all of them count in the accounting."""
        return [self.ingest_dlq, self.input_rule_dlq, self.output_rule_dlq]

    def lambda_environment(self, model_dir: Path) -> dict[str, str]:
        """The classifier function's environment, as the CDK stack sets it, pointed at moto."""
        return {
            **offline_environment(self.region, self.endpoint),
            c.ENV_MODEL_DIR: str(model_dir),
            c.ENV_REVIEW_QUEUE_URL: self.review.url,
            c.ENV_QUARANTINE_QUEUE_URL: self.quarantine.url,
            c.ENV_OUTPUT_BUS_NAME: self.output_bus_name,
            c.ENV_WINDOWS_TABLE: self.windows_table,
            c.ENV_PREDICTIONS_TABLE: self.predictions_table,
            c.ENV_QUARANTINE_BUCKET: self.quarantine_bucket,
            c.ENV_SERVICE_NAME: c.DEFAULT_SERVICE,
            c.ENV_METRICS_NAMESPACE: c.DEFAULT_NAMESPACE,
            c.ENV_ORT_TELEMETRY: "1",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
        }

    def describe(self) -> dict[str, str]:
        """Flat name → URL/ARN map for printing."""
        out = {"endpoint": self.endpoint, "region": self.region}
        for key in ("ingest", "ingest_dlq", "review", "quarantine", "output_sink", "input_rule_dlq"):
            ref: QueueRef = getattr(self, key)
            out[f"{key}_queue_url"] = ref.url
        out["input_bus"] = self.input_bus_name
        out["output_bus"] = self.output_bus_name
        out["windows_table"] = self.windows_table
        out["predictions_table"] = self.predictions_table
        out["quarantine_bucket"] = self.quarantine_bucket
        return out


def default_model_dir() -> Path:
    """The model package built into the repo (`layers/model/`), else the Lambda layer path."""
    env = os.environ.get(c.ENV_MODEL_DIR)
    if env:
        return Path(env)
    repo_layer = Path(__file__).resolve().parents[3] / "layers" / "model"
    if (repo_layer / c.MANIFEST_FILE).is_file():
        return repo_layer
    return Path(c.DEFAULT_MODEL_DIR)


def _check_port_free(port: int) -> None:
    # ThreadedMotoServer.start() waits forever if its thread cannot bind; fail fast with a clear message.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            raise RuntimeError(
                f"port {port} on {LOOPBACK} is in use ({exc.strerror}); pick another with --port"
            ) from exc


def _memoize_moto_jsonpath() -> None:
    """Speed only, no change in behaviour: cache jsonpath parsing for moto's EventBridge.

    moto delivers each event to an SQS target through an input template and builds a fresh jsonpath
    parser (ply yacc tables) for each of its 8 paths, every time: ~20 ms per delivered event here,
    which would dominate the handler's measured time. Parsed paths are immutable, so caching is safe.
    """
    try:
        import jsonpath_ng.ext as jsonpath_ext
    except ImportError:  # a moto without it has nothing to speed up
        return
    if getattr(jsonpath_ext.parse, "_pigeonhole_memoized", False):
        return
    cached = functools.lru_cache(maxsize=256)(jsonpath_ext.parse)

    def parse(path: str, debug: bool | None = None) -> Any:
        return cached(path, debug)

    setattr(parse, "_pigeonhole_memoized", True)  # noqa: B010 (a marker on a function object)
    setattr(jsonpath_ext, "parse", parse)  # noqa: B010 (moto imports it from the module on each call)


def _speed_up_moto_sqs_receive() -> None:
    """Speed only, no change in behaviour: moto's retention check on each received message.

    moto computes every queue attribute (three passes over all messages, each reading the clock per
    message) to look up MessageRetentionPeriod, once per message it returns: a receive of 10 costs
    ~30 full scans of the queue. This reads the same value straight from the queue.
    """
    try:
        from moto.core.utils import unix_time
        from moto.sqs.models import SQSBackend
    except ImportError:
        return
    if getattr(SQSBackend.is_message_valid_based_on_retention_period, "_pigeonhole_fast", False):
        return

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        queue = self.get_queue(queue_name)
        retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
        return bool(retain_until > unix_time())

    setattr(is_message_valid_based_on_retention_period, "_pigeonhole_fast", True)  # noqa: B010
    setattr(SQSBackend, "is_message_valid_based_on_retention_period", is_message_valid_based_on_retention_period)  # noqa: B010


def _speed_up_moto_transactions() -> None:
    """Speed only, no change in behaviour: moto backs a table up once per transaction item, not per table.

    Before TransactWriteItems writes anything, moto deep-copies the whole table once for every item
    that names it (the copy restores the table if the transaction fails). A classifier batch of 10 is
    11 items on one table, so 11 identical copies of a table that grows with every event: seconds per
    batch after a few thousand events, and past the functions' 5 s read timeout their SDK retries the
    transaction while moto still copies, which then fails ("dictionary changed size during
    iteration"). Here, within one call, a table already copied is not copied again: the copies are
    taken before the first write, so they are identical, and moto keeps only one of them anyway.
    """
    try:
        from moto.dynamodb import models as ddb
        from moto.dynamodb.models.table import Table
    except ImportError:
        return
    if getattr(ddb.DynamoDBBackend.transact_write_items, "_pigeonhole_fast", False):
        return
    real_copy = ddb.copy
    backups = threading.local()  # moto's server handles each request on its own thread

    class _OncePerTableCopy:
        """The `copy` module as moto's DynamoDB backend sees it; tables are copied once per transaction."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real_copy, name)

        def deepcopy(self, x: Any, memo: Any = None) -> Any:
            cache: dict[int, Any] | None = getattr(backups, "tables", None)
            if cache is None or not isinstance(x, Table):
                return real_copy.deepcopy(x, memo)
            if id(x) not in cache:
                cache[id(x)] = real_copy.deepcopy(x, memo)
            return cache[id(x)]

    original = ddb.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: Any) -> Any:
        backups.tables = {}
        try:
            return original(self, transact_items)
        finally:
            backups.tables = None

    setattr(transact_write_items, "_pigeonhole_fast", True)  # noqa: B010
    setattr(ddb, "copy", _OncePerTableCopy())  # noqa: B010 (moto's module reads `copy.deepcopy` at call time)
    setattr(ddb.DynamoDBBackend, "transact_write_items", transact_write_items)  # noqa: B010


class Emulator:
    """A moto server on 127.0.0.1 (port 0 = any free port). Use as a context manager.

    moto keeps its state in process-wide backends: two emulators in one process share it, so give
    each system its own prefix (tests do).
    """

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: Any = None
        self.endpoint = ""

    def start(self) -> str:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request otherwise
        _memoize_moto_jsonpath()
        _speed_up_moto_sqs_receive()
        _speed_up_moto_transactions()
        if self._port:
            _check_port_free(self._port)
        server = ThreadedMotoServer(ip_address=LOOPBACK, port=self._port, verbose=False)
        server.start()
        self._server = server
        host, port = server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def provision(
    endpoint: str,
    *,
    prefix: str = "pigeonhole",
    region: str = DEFAULT_REGION,
    visibility_timeout: int | None = None,
    max_attempts: int = 3,
) -> LocalResources:
    """Create one system's local topology on the moto server; return its URLs/ARNs."""
    names = ResourceNames(prefix)
    topology = topo.build(names).local()
    if visibility_timeout is not None:
        topology = with_ingest_visibility(topology, visibility_timeout)
    made = create_topology(
        sqs_client(endpoint, region, max_attempts),
        events_client(endpoint, region, max_attempts),
        dynamodb_client(endpoint, region, max_attempts),
        topology,
        s3=s3_client(endpoint, region, max_attempts),
    )
    queues = made.queues
    return LocalResources(
        endpoint=require_loopback(endpoint),
        region=region,
        names=names,
        visibility_timeout=topology.queue(names.ingest_queue).visibility_timeout_s,
        ingest=queues[names.ingest_queue],
        ingest_dlq=queues[names.ingest_dlq],
        review=queues[names.review_queue],
        quarantine=queues[names.quarantine_queue],
        output_sink=queues[names.output_sink],
        input_rule_dlq=queues[names.input_rule_dlq],
        output_rule_dlq=queues[names.output_rule_dlq],
        input_bus_name=names.input_bus,
        input_bus_arn=made.buses[names.input_bus],
        input_rule_name=names.input_rule,
        output_bus_name=names.output_bus,
        output_bus_arn=made.buses[names.output_bus],
        output_rule_name=names.output_rule,
        windows_table=names.windows_table,
        predictions_table=names.predictions_table,
        quarantine_bucket=made.buckets[names.quarantine_bucket],
        function_name=names.classifier_function,
        topology=topology,
        provisioned=made,
    )


def queue_depth(sqs: SQSClient, url: str) -> int:
    """Messages in a queue: visible + in flight + delayed."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())
