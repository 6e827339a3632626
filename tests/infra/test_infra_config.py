"""InfraConfig: typed, validated, account-agnostic; CLI strings coerce to the field types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pigeonhole.naming import MAX_BATCH_SIZE
from pigeonhole_infra.config import ConfigError, InfraConfig


def test_defaults_are_valid_and_follow_the_six_times_rule() -> None:
    config = InfraConfig()
    assert config.warm_mode == "provisioned"
    assert config.ingest_visibility_timeout_s == 6 * config.timeout_s + config.batching_window_s
    assert config.feedback_visibility_timeout_s == 6 * config.feedback_timeout_s + config.feedback_batching_window_s
    assert config.batch_size == MAX_BATCH_SIZE


def test_context_sources_and_cli_string_coercion(tmp_path: Path) -> None:
    config_file = tmp_path / "prod.json"
    config_file.write_text(json.dumps({"memory_mb": 2048, "oncall_email": "a@example.com"}))
    context = {
        "pigeonhole": {"prefix": "ph", "memory_mb": 512},
        "pigeonhole:config": str(config_file),
        "pigeonhole:timeout_s": "20",  # as `-c pigeonhole:timeout_s=20` delivers it
        "pigeonhole:destroy_data_on_teardown": "true",
        "pigeonhole:review_threshold": "0.4",
        "pigeonhole:architecture": "arm64",
        "unrelated": "ignored",
    }
    config = InfraConfig.from_context(context)
    assert config.prefix == "ph"
    assert config.memory_mb == 2048  # the file wins over cdk.json's object
    assert config.timeout_s == 20
    assert config.destroy_data_on_teardown is True
    assert config.review_threshold == 0.4
    assert config.architecture == "arm64"
    assert config.oncall_email == "a@example.com"
    assert config.names.ingest_queue == "ph-ingest"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("architecture", "sparc"),
        ("warm_mode", "both"),  # provisioned concurrency and SnapStart are one switch: never both
        ("batch_size", MAX_BATCH_SIZE + 1),
        ("timeout_s", 901),
        ("timeout_s", 8000),
        ("max_concurrency", 1),
        ("provisioned_min", 5),  # above provisioned_max (10 is fine, so pair it below)
        ("window_seconds", 90),
        ("window_shards", 0),
        ("window_shards", 101),
        ("oncall_email", "not-an-address"),
        ("oncall_https_url", "http://insecure.example.com"),
        ("prefix", "Upper_Case"),
        ("log_retention_days", 2),
        ("python_version", "3.11"),
        ("runbook_url", "https://wiki.example.com/runbook#top"),  # each alarm appends #<suffix>
        ("runbook_url", "https://example.com/" + "x" * 512),  # would push descriptions past 1,024
    ],
)
def test_invalid_values_are_rejected(field: str, value: object) -> None:
    values = {field: value}
    if field == "provisioned_min":
        values["provisioned_max"] = 2
    with pytest.raises(ConfigError, match=field.split("_", maxsplit=1)[0]):
        InfraConfig.from_mapping(values)


def test_unknown_keys_and_bad_types_are_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown configuration keys: memroy_mb"):
        InfraConfig.from_mapping({"memroy_mb": 512})
    with pytest.raises(ConfigError, match="memory_mb: expected int"):
        InfraConfig.from_mapping({"memory_mb": "lots"})
    with pytest.raises(ConfigError, match="expected true or false"):
        InfraConfig.from_mapping({"destroy_data_on_teardown": "maybe"})
