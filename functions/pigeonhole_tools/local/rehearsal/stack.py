"""Synthesis, moto clients, the CDK bootstrap and the stack's create, update and delete."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import boto3

from pigeonhole import constants as c
from pigeonhole_tools.local.emulator import (
    DEFAULT_REGION,
    FAKE_CREDENTIAL,
    _config,
    require_loopback,
)
from pigeonhole_tools.local.rehearsal.template import adjust

REPO_ROOT: Final = Path(__file__).resolve().parents[4]
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
    """The `pigeonhole` context of a rehearsal stack: its own prefix and stack name, the given model.

    `oncall: none`: a rehearsal pages nobody, and says so (a stack without an on-call endpoint does not
    synthesize otherwise).
    """
    return {
        "prefix": prefix,
        "stack_name": stack_name_for(prefix),
        "model_dir": str(model_dir),
        "oncall": "none",
        **overrides,
    }


def stack_name_for(prefix: str) -> str:
    return "".join(part.capitalize() for part in prefix.split("-"))


def synthesize(config: Mapping[str, Any], outdir: Path) -> dict[str, Any]:
    """Synthesize the real CDK app (cdk.json's flags, cdk-nag on) with bundling skipped; return the template.

    Skipping bundling (`aws:cdk:bundling-stacks: []`, as the infra tests do) leaves the layer assets
    unbuilt; moto never runs the code, so only the template matters.
    """
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")  # as the Makefile sets it
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
