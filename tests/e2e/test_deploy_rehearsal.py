"""Deploy rehearsal: the synthesized CloudFormation template in moto's CloudFormation on loopback.

Synthesizes the real CDK app twice per module (the deployed configuration and an update of it),
deploys into the module's moto server, compares what moto created with what the local runtime
provisions, runs the real classifier with the deployed function's environment, then updates and
deletes the stack. Everything is read back with boto3 describe calls over HTTP.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pigeonhole import topology
from pigeonhole.naming import ResourceNames
from pigeonhole_tools.local.emulator import Emulator, LocalResources, provision
from pigeonhole_tools.local.rehearsal.compare import (
    compare,
    environment_differences,
    function_environment,
    local_mapping_shape,
    read_system,
    spec_shape,
    template_only_settings,
)
from pigeonhole_tools.local.rehearsal.drive import drive_classifier, handler_environment
from pigeonhole_tools.local.rehearsal.stack import Deployment, Moto, bootstrap, rehearsal_config, synthesize
from pigeonhole_tools.local.rehearsal.template import (
    MOTO_VERSION,
    REWRITES,
    SKIPPED_TYPES,
    check_moto_version,
    installed_moto_version,
)

pytestmark = pytest.mark.slow

# The update the rehearsal applies: smaller batches and a shorter function timeout (so the ingest
# queue's visibility timeout, 6 x timeout + batching window, changes too).
UPDATE = {"batch_size": 5, "timeout_s": 20}

# Resources one side has and the other does not, by design (`Where` in pigeonhole.topology): the drift
# schedule targets a Lambda function, which the local runtime does not run; the local runtime reads
# the output bus through a sink queue of its own.
ONLY_DEPLOYED = {"queue:drift-dlq", "rule:drift-schedule"}
ONLY_LOCAL = {"queue:output-sink", "queue:output-sink-rule-dlq", "rule:output-to-sink"}


@dataclass
class Rehearsal:
    moto: Moto
    prefix: str
    deployment: Deployment
    template: dict[str, Any]
    update_template: dict[str, Any]
    local: LocalResources

    @property
    def function_name(self) -> str:
        return f"{self.prefix}-classifier"


@pytest.fixture(scope="module")
def rehearsal(emulator: Emulator, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Rehearsal:
    """Both templates synthesized once; the stack created once; a local system provisioned beside it."""
    prefix = f"reh-{uuid.uuid4().hex[:6]}"
    config = rehearsal_config(prefix, model_dir)
    outdir = tmp_path_factory.mktemp("rehearsal")
    template = synthesize(config, outdir / "create")
    update_template = synthesize({**config, **UPDATE}, outdir / "update")
    moto = Moto(emulator.endpoint)
    bootstrap(moto)
    deployment = Deployment(moto, str(config["stack_name"]))
    assert deployment.create(template) == "CREATE_COMPLETE"
    local = provision(emulator.endpoint, prefix=f"local-{prefix}", max_attempts=1)
    return Rehearsal(moto, prefix, deployment, template, update_template, local)


def test_the_installed_moto_is_the_one_the_rewrites_were_written_for() -> None:
    assert installed_moto_version() == MOTO_VERSION, (
        f"moto {installed_moto_version()} is installed; the rehearsal's rewrites were written for {MOTO_VERSION}"
    )
    check_moto_version()


def test_every_rewrite_still_changes_the_template(rehearsal: Rehearsal) -> None:
    """A rewrite that matches nothing is stale: the template or CDK changed under it."""
    counts = rehearsal.deployment.rewrites
    assert list(counts) == [r.name for r in REWRITES]
    assert all(n > 0 for n in counts.values()), counts
    # One key, two buses referenced five times, one mapping on the alias, two mappings, four functions
    # (classifier, drift, feedback, golden hook), the new version named in the hook's policy and environment.
    assert counts["kms-key-tags"] == 1
    assert counts["event-source-mapping-on-function"] == 1
    assert counts["disable-event-source-mappings"] == 2
    assert counts["function-layers-dropped"] == 4
    assert counts["version-ref-to-arn"] == 2


def test_moto_skips_exactly_the_known_resource_types(rehearsal: Rehearsal) -> None:
    """A type moto newly skips (a new construct) or newly creates (a moto upgrade) fails here."""
    not_created = rehearsal.deployment.not_created()
    assert set(not_created.values()) == SKIPPED_TYPES
    # moto lists each skipped resource as a blank entry (no logical id, type or physical id).
    blanks = [r for r in rehearsal.deployment.stack_resources() if not r["LogicalResourceId"]]
    assert len(blanks) == len(not_created)
    assert all(r["ResourceType"] == "" and r["PhysicalResourceId"] == "" for r in blanks)
    template_types = {r["Type"] for r in rehearsal.template["Resources"].values()}
    created_types = set(rehearsal.deployment.created_types().values())
    assert created_types == template_types - SKIPPED_TYPES
    assert {"AWS::SQS::Queue", "AWS::Events::Rule", "AWS::DynamoDB::Table", "AWS::Lambda::EventSourceMapping"} <= (
        created_types
    )


def test_deployed_resources_match_the_local_runtime(rehearsal: Rehearsal) -> None:
    deployed = template_only_settings(
        read_system(rehearsal.moto, rehearsal.prefix, rehearsal.function_name),
        rehearsal.deployment.template,
        rehearsal.prefix,
    )
    local = read_system(rehearsal.moto, rehearsal.local.names.prefix)
    local["mapping:ingest"] = local_mapping_shape(rehearsal.local)
    result = compare(deployed, local)

    assert set(result.only_deployed) == ONLY_DEPLOYED
    assert set(result.only_local) == ONLY_LOCAL
    # Nothing differs since both build from pigeonhole.topology. Before it, this found the review and
    # quarantine queues (visibility 300 s vs 30 s, DLQ vs none) and the input rule's pattern spelling.
    assert result.differences == []
    # What both sides agree on, spelled out (a reader sees what the comparison covered).
    ingest = deployed["queue:ingest"]
    assert ingest == local["queue:ingest"]
    assert ingest["dead_letter_queue"] == "ingest-dlq"
    assert ingest["max_receive_count"] == 5
    assert ingest["visibility_timeout"] == 181
    assert deployed["mapping:ingest"] == {
        "function": "classifier",
        "batch_size": 10,
        "batching_window_s": 1,
        "report_batch_item_failures": True,
    }
    assert deployed["table:windows"]["keys"] == [("pk", "HASH"), ("sk", "RANGE")]
    assert deployed["table:windows"]["ttl"] == "expires_at"
    assert deployed["rule:input-to-ingest"]["targets"] == local["rule:input-to-ingest"]["targets"]
    assert deployed["rule:drift-schedule"] == {
        "bus": "default",
        "pattern": None,
        "schedule": "rate(5 minutes)",
        "targets": [("drift", "drift-dlq", json.dumps({"MaximumEventAgeInSeconds": 300, "MaximumRetryAttempts": 2}))],
    }


def test_the_function_environment_matches_the_local_runtime(rehearsal: Rehearsal, model_dir: Path) -> None:
    deployed = function_environment(rehearsal.moto, rehearsal.function_name)
    assert deployed["PIGEONHOLE_REVIEW_QUEUE_URL"].endswith(f"/{rehearsal.prefix}-review")
    differences = environment_differences(
        deployed, rehearsal.prefix, rehearsal.local.lambda_environment(model_dir), rehearsal.local.names.prefix
    )
    assert differences == []


def test_the_handler_refuses_to_run_without_the_moto_endpoint(rehearsal: Rehearsal, model_dir: Path) -> None:
    env = handler_environment({"PIGEONHOLE_REVIEW_QUEUE_URL": "x"}, rehearsal.moto, model_dir)
    assert env["AWS_ENDPOINT_URL"] == rehearsal.moto.endpoint
    with pytest.raises(ValueError, match="not on loopback"):
        handler_environment({}, Moto("https://sqs.us-east-1.amazonaws.com"), model_dir)


def test_the_real_classifier_runs_with_the_deployed_environment(
    rehearsal: Rehearsal, model_dir: Path, restore_environ: None
) -> None:
    outcome = drive_classifier(rehearsal.moto, rehearsal.prefix, model_dir, "I lost my card yesterday, please block it")
    assert outcome.batch_item_failures == []
    assert outcome.landed, outcome
    classified = outcome.output[0]
    assert classified["detail-type"] == "EventClassified"
    assert classified["detail"]["id"] == outcome.event_id
    assert classified["detail"]["label"] == "lost_or_stolen_card"
    # The window recorder wrote into the deployed table (the function's own table name).
    dynamodb = rehearsal.moto.client("dynamodb")
    assert dynamodb.scan(TableName=f"{rehearsal.prefix}-windows")["Count"] >= 1


def test_deployed_and_local_resources_match_the_topology_specs(rehearsal: Rehearsal) -> None:
    """Both systems equal `pigeonhole.topology`'s specs, each side its own part (`deployed()`, `local()`)."""

    deployed = template_only_settings(
        read_system(rehearsal.moto, rehearsal.prefix), rehearsal.deployment.template, rehearsal.prefix
    )
    local = read_system(rehearsal.moto, rehearsal.local.names.prefix)
    specs = topology.build(ResourceNames(rehearsal.prefix))
    local_specs = topology.build(ResourceNames(rehearsal.local.names.prefix))

    against_deployed = compare(deployed, spec_shape(specs.deployed(), rehearsal.prefix))
    assert (against_deployed.only_deployed, against_deployed.only_local) == ([], [])
    assert against_deployed.differences == []
    against_local = compare(local, spec_shape(local_specs.local(), rehearsal.local.names.prefix))
    assert (against_local.only_deployed, against_local.only_local) == ([], [])
    assert against_local.differences == []


def test_update_applies_in_place_then_delete_keeps_retained_data(rehearsal: Rehearsal) -> None:
    moto, prefix = rehearsal.moto, rehearsal.prefix
    sqs, lam = moto.client("sqs"), moto.client("lambda")
    ingest_url = sqs.get_queue_url(QueueName=f"{prefix}-ingest")["QueueUrl"]
    before = lam.list_event_source_mappings(FunctionName=rehearsal.function_name)["EventSourceMappings"]
    sqs.send_message(QueueUrl=ingest_url, MessageBody=json.dumps({"id": "survives-update"}))

    assert rehearsal.deployment.update(rehearsal.update_template) == "UPDATE_COMPLETE"

    after = lam.list_event_source_mappings(FunctionName=rehearsal.function_name)["EventSourceMappings"]
    assert [m["UUID"] for m in after] == [m["UUID"] for m in before]  # updated, not replaced
    assert after[0]["BatchSize"] == 5
    attrs = sqs.get_queue_attributes(QueueUrl=ingest_url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == str(6 * 20 + 1)
    assert sqs.get_queue_url(QueueName=f"{prefix}-ingest")["QueueUrl"] == ingest_url
    assert attrs["ApproximateNumberOfMessages"] == "1"  # the same queue: its message is still there
    assert lam.get_function_configuration(FunctionName=rehearsal.function_name)["Timeout"] == 20

    assert rehearsal.deployment.delete() == "DELETE_COMPLETE"
    queues = sqs.list_queues(QueueNamePrefix=f"{prefix}-").get("QueueUrls", [])
    assert queues == []
    functions = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    assert not [f for f in functions if f.startswith(f"{prefix}-")]
    # Tables and the key are RETAIN by default (destroy_data_on_teardown is off): moto keeps them too.
    tables = moto.client("dynamodb").list_tables()["TableNames"]
    assert {f"{prefix}-windows", f"{prefix}-predictions", f"{prefix}-feedback"} <= set(tables)
