"""Deploy rehearsal: the synthesized CloudFormation template, deployed into moto's CloudFormation.

`make up` builds the local system from `local/emulator.py`; `cdk deploy` builds it from the CDK
constructs. This deploys the real template (synthesized offline, bundling skipped) into a moto
server on loopback, reads back what moto created with ordinary describe calls, compares it with
what the local runtime provisions, and drives the real classifier handler with the deployed
function's own environment. The template adjustments moto needs live in `rehearsal_template.py`.

Needs the `dev` extra (aws-cdk-lib, Node) for synthesis; nothing here can reach AWS: every client
is bound to a loopback endpoint with fake credentials.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import boto3

from pigeonhole import constants as c
from pigeonhole_tools.local.emulator import (
    DEFAULT_REGION,
    FAKE_CREDENTIAL,
    INPUT_DETAIL_TYPE,
    INPUT_SOURCE,
    OUTPUT_EVENT_PATTERN,
    LocalResources,
    _config,
    offline_environment,
    require_loopback,
)
from pigeonhole_tools.local.rehearsal_template import adjust, check_moto_version

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

REPO_ROOT: Final = Path(__file__).resolve().parents[3]
INFRA_APP: Final = REPO_ROOT / "infra" / "app.py"
MOTO_ACCOUNT: Final = "123456789012"  # moto's default account
# What `cdk bootstrap` would have created and the template reads (qualifier hnb659fds is CDK's default).
BOOTSTRAP_VERSION_PARAMETER: Final = "/cdk-bootstrap/hnb659fds/version"
BOOTSTRAP_VERSION: Final = "30"
ASSET_BUCKET: Final = "cdk-hnb659fds-assets-{account}-{region}"
SKIP_BUNDLING: Final[dict[str, list[str]]] = {"aws:cdk:bundling-stacks": []}
DEFAULT_PREFIX: Final = "rehearsal"
# What the rehearsal overrides in the deployed function's environment, and why (the rest is used as deployed).
LOCAL_OVERRIDES: Final = {
    c.ENV_MODEL_DIR: "the model layer's /opt/model is the repo's layers/model here",
    "AWS_ENDPOINT_URL": "every client goes to the moto server (the queue URLs name the real SQS host)",
    "POWERTOOLS_TRACE_DISABLED": "no X-Ray daemon on this machine",
}


class RehearsalError(RuntimeError):
    """A rehearsal step failed; the message says which and what moto answered."""


# -- synthesis ---------------------------------------------------------------------------------------


def _load_infra_app() -> ModuleType:
    """infra/app.py is a script outside the package: import it by path (it puts infra/ on sys.path)."""
    name = "pigeonhole_infra_app"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, INFRA_APP)
    if spec is None or spec.loader is None or not INFRA_APP.is_file():
        raise RehearsalError(f"the CDK app is not at {INFRA_APP} (the rehearsal runs from a repository checkout)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        del sys.modules[name]
        raise RehearsalError(f"synthesis needs the dev extra (aws-cdk-lib): {exc}") from exc
    return module


def rehearsal_config(prefix: str, model_dir: Path, **overrides: Any) -> dict[str, Any]:
    """The `pigeonhole` context of a rehearsal stack: its own prefix and stack name, the given model."""
    return {"prefix": prefix, "stack_name": stack_name_for(prefix), "model_dir": str(model_dir), **overrides}


def stack_name_for(prefix: str) -> str:
    return "".join(part.capitalize() for part in prefix.split("-"))


def synthesize(config: Mapping[str, Any], outdir: Path) -> dict[str, Any]:
    """Synthesize the real CDK app (cdk.json's flags, cdk-nag on) with bundling skipped; return the template.

    Skipping bundling (`aws:cdk:bundling-stacks: []`, as the infra tests do) leaves the layer assets
    unbuilt; moto never runs the code, so only the template matters.
    """
    app_module = _load_infra_app()
    app = app_module.build_app(context={"pigeonhole": dict(config), **SKIP_BUNDLING}, outdir=str(outdir))
    assembly = app.synth()
    path = Path(assembly.directory) / f"{config['stack_name']}.template.json"
    template: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return template


# -- moto clients and bootstrap ----------------------------------------------------------------------


@dataclass(frozen=True)
class Moto:
    """Clients for one moto endpoint (loopback only, fake credentials)."""

    endpoint: str
    region: str = DEFAULT_REGION
    max_attempts: int = 1

    def client(self, service: str) -> Any:
        session = boto3.session.Session(
            aws_access_key_id=FAKE_CREDENTIAL,
            aws_secret_access_key=FAKE_CREDENTIAL,
            aws_session_token=FAKE_CREDENTIAL,
            region_name=self.region,
        )
        return session.client(
            service,  # type: ignore[call-overload]
            endpoint_url=require_loopback(self.endpoint),
            config=_config(self.max_attempts),
        )


def bootstrap(moto: Moto) -> None:
    """What `cdk bootstrap` leaves behind that the template reads: the version parameter and the asset bucket."""
    moto.client("ssm").put_parameter(
        Name=BOOTSTRAP_VERSION_PARAMETER, Value=BOOTSTRAP_VERSION, Type="String", Overwrite=True
    )
    s3 = moto.client("s3")
    bucket = ASSET_BUCKET.format(account=MOTO_ACCOUNT, region=moto.region)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        if moto.region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": moto.region})


# -- create, update, delete --------------------------------------------------------------------------


@dataclass
class Deployment:
    """One stack in moto's CloudFormation: the adjusted template and what the rewrites changed."""

    moto: Moto
    stack_name: str
    rewrites: dict[str, int] = field(default_factory=dict)
    template: dict[str, Any] = field(default_factory=dict)

    def _wait(self, done: set[str], timeout_s: float = 60.0) -> str:
        """moto applies changes synchronously; poll anyway, as against CloudFormation."""
        cfn = self.moto.client("cloudformation")
        deadline = time.monotonic() + timeout_s
        while True:
            stack = cfn.describe_stacks(StackName=self.stack_name)["Stacks"][0]
            status: str = stack["StackStatus"]
            if status in done or not status.endswith("_IN_PROGRESS") or time.monotonic() > deadline:
                if status not in done:
                    raise RehearsalError(f"stack {self.stack_name}: {status} ({stack.get('StackStatusReason')})")
                return status
            time.sleep(0.2)

    def create(self, template: Mapping[str, Any]) -> str:
        self.template, self.rewrites = adjust(template)
        self.moto.client("cloudformation").create_stack(
            StackName=self.stack_name,
            TemplateBody=json.dumps(self.template),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
        return self._wait({"CREATE_COMPLETE"})

    def update(self, template: Mapping[str, Any]) -> str:
        self.template, self.rewrites = adjust(template)
        self.moto.client("cloudformation").update_stack(
            StackName=self.stack_name,
            TemplateBody=json.dumps(self.template),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
        return self._wait({"UPDATE_COMPLETE"})

    def delete(self) -> str:
        cfn = self.moto.client("cloudformation")
        stack_id = cfn.describe_stacks(StackName=self.stack_name)["Stacks"][0]["StackId"]
        cfn.delete_stack(StackName=self.stack_name)
        stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]  # a deleted stack is found by id only
        status: str = stack["StackStatus"]
        if status != "DELETE_COMPLETE":
            raise RehearsalError(f"stack {self.stack_name}: {status} ({stack.get('StackStatusReason')})")
        return status

    def stack_resources(self) -> list[dict[str, Any]]:
        cfn = self.moto.client("cloudformation")
        pages = cfn.get_paginator("list_stack_resources").paginate(StackName=self.stack_name)
        return [dict(r) for page in pages for r in page["StackResourceSummaries"]]

    def created_types(self) -> dict[str, str]:
        """Logical id -> type of every resource moto's CloudFormation created for the stack.

        moto lists each resource it skipped as an entry with an empty logical id, type and physical
        id; those are left out here.
        """
        return {r["LogicalResourceId"]: r["ResourceType"] for r in self.stack_resources() if r["LogicalResourceId"]}

    def not_created(self) -> dict[str, str]:
        """Logical id -> type of the template's resources moto did not create (its skipped types)."""
        created = self.created_types()
        return {k: v["Type"] for k, v in self.template.get("Resources", {}).items() if k not in created}


# -- reading a system back ---------------------------------------------------------------------------

# The shape both sides are reduced to: resource key (name without the prefix) -> settings.
Shape = dict[str, dict[str, Any]]


def _strip(name: str, prefix: str) -> str:
    return name.removeprefix(f"{prefix}-")


def _arn_name(arn: str) -> str:
    return arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def _queue_shape(sqs: SQSClient, url: str, prefix: str) -> dict[str, Any]:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    shape: dict[str, Any] = {
        "visibility_timeout": int(attrs["VisibilityTimeout"]),
        "retention": int(attrs["MessageRetentionPeriod"]),
    }
    if "RedrivePolicy" in attrs:
        redrive = json.loads(attrs["RedrivePolicy"])
        shape["dead_letter_queue"] = _strip(_arn_name(redrive["deadLetterTargetArn"]), prefix)
        shape["max_receive_count"] = int(redrive["maxReceiveCount"])
    return shape


def read_system(moto: Moto, prefix: str, function_name: str | None = None) -> Shape:
    """Every queue, bus, rule (pattern, targets), table and mapping named `<prefix>-…`, via describe calls."""
    sqs = moto.client("sqs")
    events = moto.client("events")
    dynamodb = moto.client("dynamodb")
    shape: Shape = {}
    for url in sqs.list_queues(QueueNamePrefix=f"{prefix}-").get("QueueUrls", []):
        shape[f"queue:{_strip(url.rsplit('/', 1)[-1], prefix)}"] = _queue_shape(sqs, url, prefix)
    for bus in events.list_event_buses(NamePrefix=f"{prefix}-")["EventBuses"]:
        shape[f"bus:{_strip(bus['Name'], prefix)}"] = {}
        for rule in events.list_rules(EventBusName=bus["Name"])["Rules"]:
            if not rule["Name"].startswith(f"{prefix}-"):
                continue
            targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus["Name"])["Targets"]
            shape[f"rule:{_strip(rule['Name'], prefix)}"] = {
                "bus": _strip(bus["Name"], prefix),
                "pattern": json.loads(rule["EventPattern"]) if rule.get("EventPattern") else None,
                "schedule": rule.get("ScheduleExpression"),
                "targets": sorted(
                    (
                        _strip(_arn_name(t["Arn"]), prefix),
                        _strip(_arn_name(t.get("DeadLetterConfig", {}).get("Arn", "-")), prefix),
                        json.dumps(t.get("RetryPolicy", {}), sort_keys=True),
                    )
                    for t in targets
                ),
            }
    for name in dynamodb.list_tables()["TableNames"]:
        if not name.startswith(f"{prefix}-"):
            continue
        table = dynamodb.describe_table(TableName=name)["Table"]
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        shape[f"table:{_strip(name, prefix)}"] = {
            "keys": sorted((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]),
            "attributes": sorted((a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]),
            "billing": table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED"),
            "ttl": ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") == "ENABLED" else None,
        }
    if function_name is not None:
        lam = moto.client("lambda")
        for mapping in lam.list_event_source_mappings(FunctionName=function_name)["EventSourceMappings"]:
            shape[f"mapping:{_strip(_arn_name(mapping['EventSourceArn']), prefix)}"] = mapping_shape(mapping, prefix)
    return shape


def mapping_shape(mapping: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The event source mapping settings the local poller plays (Enabled is the rehearsal's, see the rewrites)."""
    return {
        "function": _strip(_arn_name(mapping["FunctionArn"]), prefix),
        "batch_size": mapping["BatchSize"],
        "batching_window_s": mapping.get("MaximumBatchingWindowInSeconds", 0),
        "report_batch_item_failures": "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", []),
    }


def local_mapping_shape(resources: LocalResources) -> dict[str, Any]:
    """What `local up`'s poller does, in the same shape (it has no mapping resource to describe)."""
    from pigeonhole.naming import MAX_BATCH_SIZE
    from pigeonhole_tools.local.emulator import DEFAULT_BATCHING_WINDOW

    return {
        "function": _strip(resources.function_name, resources.names.prefix),
        "batch_size": MAX_BATCH_SIZE,
        "batching_window_s": DEFAULT_BATCHING_WINDOW,
        "report_batch_item_failures": True,  # the poller reads partial batch responses (poller.failed_message_ids)
    }


@dataclass(frozen=True)
class Difference:
    key: str
    field: str
    deployed: Any
    local: Any

    def __str__(self) -> str:
        return f"{self.key} {self.field}: deployed {self.deployed!r}, local {self.local!r}"


@dataclass(frozen=True)
class Comparison:
    """Deployed vs. locally provisioned: resources on one side only, and settings that differ."""

    only_deployed: list[str]
    only_local: list[str]
    differences: list[Difference]


def compare(deployed: Shape, local: Shape) -> Comparison:
    differences = []
    for key in sorted(deployed.keys() & local.keys()):
        for name in sorted(deployed[key].keys() | local[key].keys()):
            a, b = deployed[key].get(name), local[key].get(name)
            if a != b:
                differences.append(Difference(key, name, a, b))
    return Comparison(
        only_deployed=sorted(deployed.keys() - local.keys()),
        only_local=sorted(local.keys() - deployed.keys()),
        differences=differences,
    )


def function_environment(moto: Moto, function_name: str) -> dict[str, str]:
    """The deployed function's environment variables, as Lambda would hand them to the handler."""
    config = moto.client("lambda").get_function_configuration(FunctionName=function_name)
    variables: dict[str, str] = config.get("Environment", {}).get("Variables", {})
    return dict(variables)


# Powertools' own defaults: a variable the local runtime leaves unset means this value.
POWERTOOLS_DEFAULTS: Final = {"POWERTOOLS_LOG_LEVEL": "INFO"}


def _as_dict(settings: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        return dataclasses.asdict(settings)
    dump = getattr(settings, "model_dump", None)
    return dict(dump()) if callable(dump) else dict(vars(settings))


def _neutral(value: Any, prefix: str) -> Any:
    """A name or URL with its system's prefix replaced, so two systems' names compare (URLs by queue name)."""
    if not isinstance(value, str):
        return value
    if "://" in value:
        value = value.rsplit("/", 1)[-1]
    return value.replace(f"{prefix}-", "<prefix>-")


def environment_differences(
    deployed: Mapping[str, str], deployed_prefix: str, local: Mapping[str, str], local_prefix: str
) -> list[Difference]:
    """What the classifier would see, deployed vs. local: its effective Settings and the Powertools variables.

    Settings are compared after parsing (a variable left unset locally that defaults to the deployed
    value is no difference); names compare without their prefix and queue URLs by queue name (moto's
    CloudFormation names the real SQS host, the local runtime its loopback endpoint).
    """
    from pigeonhole.config import Settings

    differences = []
    settings = (_as_dict(Settings.from_env(dict(deployed))), _as_dict(Settings.from_env(dict(local))))
    for name in sorted(settings[0].keys() | settings[1].keys()):
        if name == "model_dir":  # a LOCAL_OVERRIDES entry: /opt/model is the model layer's path
            continue
        a, b = _neutral(settings[0].get(name), deployed_prefix), _neutral(settings[1].get(name), local_prefix)
        if a != b:
            differences.append(Difference("function:settings", name, a, b))
    names = {n for n in deployed.keys() | local.keys() if n.startswith(("POWERTOOLS_", "ORT_"))}
    for name in sorted(names - set(LOCAL_OVERRIDES)):
        a = deployed.get(name, POWERTOOLS_DEFAULTS.get(name))
        b = local.get(name, POWERTOOLS_DEFAULTS.get(name))
        if a != b:
            differences.append(Difference("function:environment", name, a, b))
    return differences


def template_only_settings(shape: Shape, template: Mapping[str, Any], prefix: str) -> Shape:
    """Settings moto's CloudFormation accepts but does not apply, taken from the template instead.

    moto 5.2.5 ignores a table's TimeToLiveSpecification (DescribeTimeToLive says DISABLED), so the
    deployed side's TTL attribute is read from the template; everything else is read from moto.
    """
    out = {key: dict(value) for key, value in shape.items()}
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        props = resource.get("Properties", {})
        ttl = props.get("TimeToLiveSpecification", {})
        key = f"table:{_strip(str(props.get('TableName')), prefix)}"
        if key in out and ttl.get("Enabled"):
            out[key]["ttl"] = ttl.get("AttributeName")
    return out


# -- driving the classifier --------------------------------------------------------------------------


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` in os.environ for the block, then put the environment back exactly."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def handler_environment(deployed: Mapping[str, str], moto: Moto, model_dir: Path) -> dict[str, str]:
    """The deployed environment plus LOCAL_OVERRIDES, refusing to run unless every client goes to moto."""
    env = {
        **deployed,
        **offline_environment(moto.region, moto.endpoint),
        c.ENV_MODEL_DIR: str(model_dir),
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    # The queue URLs in the template name sqs.<region>.amazonaws.com: without the endpoint override
    # the handler would call AWS. offline_environment sets it; check, so a change there cannot slip by.
    endpoint = env.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise RehearsalError("AWS_ENDPOINT_URL is not set: the deployed queue URLs point at the real SQS host")
    require_loopback(endpoint)
    return env


@dataclass(frozen=True)
class Classified:
    """Where one event ended up after the real handler ran with the deployed environment."""

    event_id: str
    batch_item_failures: list[str]
    output: list[dict[str, Any]]  # EventClassified events read back from the test queue on the output bus
    review: list[dict[str, Any]]

    @property
    def landed(self) -> bool:
        return not self.batch_item_failures and len(self.output) + len(self.review) == 1


def _drain(sqs: SQSClient, url: str, expect: int = 1, attempts: int = 5) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for _ in range(attempts):
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        for message in batch:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if len(found) >= expect:
            break
        time.sleep(0.2)
    return found


def drive_classifier(moto: Moto, prefix: str, model_dir: Path, text: str) -> Classified:
    """Put one event on the deployed input bus and run the real handler on what reaches the ingest queue.

    The deployed rule carries it to the ingest queue; a test queue subscribed to the output bus (not
    part of the stack) catches the classifier's EventClassified event.
    """
    from pigeonhole.classify import handler as handler_module
    from pigeonhole_tools.local.poller import LambdaContext, build_event

    function_name = f"{prefix}-classifier"
    sqs = moto.client("sqs")
    events = moto.client("events")
    lam = moto.client("lambda")
    sink_name = f"{prefix}-rehearsal-sink"
    sink_url = sqs.create_queue(QueueName=sink_name)["QueueUrl"]
    sink_arn = sqs.get_queue_attributes(QueueUrl=sink_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    deployed_env = function_environment(moto, function_name)
    output_bus = deployed_env[c.ENV_OUTPUT_BUS_NAME]
    rule = f"{prefix}-rehearsal-sink-rule"
    events.put_rule(Name=rule, EventBusName=output_bus, EventPattern=json.dumps(OUTPUT_EVENT_PATTERN))
    events.put_targets(Rule=rule, EventBusName=output_bus, Targets=[{"Id": "sink", "Arn": sink_arn}])

    event_id = f"rehearsal-{uuid.uuid4().hex[:12]}"
    detail = {"id": event_id, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "text": text}
    response = events.put_events(
        Entries=[
            {
                "EventBusName": f"{prefix}-input",
                "Source": INPUT_SOURCE,
                "DetailType": INPUT_DETAIL_TYPE,
                "Detail": json.dumps(detail),
            }
        ]
    )
    if response.get("FailedEntryCount"):
        raise RehearsalError(f"put_events on the deployed input bus failed: {response['Entries']}")

    ingest_url = sqs.get_queue_url(QueueName=f"{prefix}-ingest")["QueueUrl"]
    ingest_arn = sqs.get_queue_attributes(QueueUrl=ingest_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages = sqs.receive_message(
        QueueUrl=ingest_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    ).get("Messages", [])
    if len(messages) != 1:
        raise RehearsalError(f"expected the event on the deployed ingest queue, found {len(messages)} messages")

    config = lam.get_function_configuration(FunctionName=function_name)
    env = handler_environment(deployed_env, moto, model_dir)
    with patched_environ(env):
        handler_module.reset_for_tests()  # a cold container that reads this environment
        try:
            context = LambdaContext.start(
                function_name, config["FunctionArn"], float(config["Timeout"]), int(config["MemorySize"])
            )
            result = handler_module.handler(build_event(messages, ingest_arn, moto.region), context)
        finally:
            handler_module.reset_for_tests()
    failures = [item["itemIdentifier"] for item in (result or {}).get("batchItemFailures", [])]
    if not failures:
        sqs.delete_message(QueueUrl=ingest_url, ReceiptHandle=messages[0]["ReceiptHandle"])
    review_url = sqs.get_queue_url(QueueName=f"{prefix}-review")["QueueUrl"]
    output = _drain(sqs, sink_url, attempts=2)
    review = [] if output else _drain(sqs, review_url, attempts=2)
    return Classified(event_id=event_id, batch_item_failures=failures, output=output, review=review)


# -- the whole rehearsal (used by `pigeonhole local deploy`) -------------------------------------------


@dataclass
class Report:
    """What one rehearsal found; `ok` is what the CLI exits on."""

    stack_name: str
    rewrites: dict[str, int] = field(default_factory=dict)
    not_created: dict[str, str] = field(default_factory=dict)
    comparison: Comparison | None = None
    environment: list[Difference] = field(default_factory=list)
    classified: Classified | None = None
    updated: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False
    steps: list[tuple[str, float]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.classified and self.classified.landed)


def run_rehearsal(
    endpoint: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    model_dir: Path,
    outdir: Path,
    text: str = "I lost my card yesterday, please block it",
    update: Mapping[str, Any] | None = None,
    delete: bool = True,
) -> Report:
    """Synthesize, bootstrap, create, compare with a locally provisioned system, classify, update, delete."""
    from pigeonhole_tools.local.emulator import provision

    check_moto_version()
    moto = Moto(endpoint)
    config = rehearsal_config(prefix, model_dir)
    report = Report(stack_name=str(config["stack_name"]))

    def step(name: str, started: float) -> None:
        report.steps.append((name, time.perf_counter() - started))

    t = time.perf_counter()
    template = synthesize(config, outdir / "create")
    step("synthesize", t)
    t = time.perf_counter()
    bootstrap(moto)
    deployment = Deployment(moto, report.stack_name)
    deployment.create(template)
    report.rewrites = deployment.rewrites
    report.not_created = deployment.not_created()
    step("create", t)

    t = time.perf_counter()
    local_prefix = f"local-{prefix}"  # not `<prefix>-…`: read_system lists by prefix
    local = provision(endpoint, prefix=local_prefix, region=moto.region, max_attempts=1)
    function_name = f"{prefix}-classifier"
    deployed_shape = template_only_settings(read_system(moto, prefix, function_name), deployment.template, prefix)
    local_shape = read_system(moto, local_prefix)
    local_shape[f"mapping:{_strip(local.ingest.name, local_prefix)}"] = local_mapping_shape(local)
    report.comparison = compare(deployed_shape, local_shape)
    report.environment = environment_differences(
        function_environment(moto, function_name), prefix, local.lambda_environment(model_dir), local_prefix
    )
    step("compare", t)

    t = time.perf_counter()
    report.classified = drive_classifier(moto, prefix, model_dir, text)
    step("classify", t)

    if update:
        t = time.perf_counter()
        changed = synthesize({**config, **update}, outdir / "update")
        deployment.update(changed)
        report.updated = read_system(moto, prefix, function_name)
        step("update", t)
    if delete:
        t = time.perf_counter()
        report.deleted = deployment.delete() == "DELETE_COMPLETE"
        step("delete", t)
    return report
