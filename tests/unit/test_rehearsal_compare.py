"""The deploy rehearsal's comparison on hand-made shapes and environments (no moto, no CDK)."""

from __future__ import annotations

from pigeonhole_tools.local.rehearsal.compare import Difference, compare, environment_differences

DEPLOYED_ENV = {
    "PIGEONHOLE_MODEL_DIR": "/opt/model",
    "PIGEONHOLE_REVIEW_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dep-review",
    "PIGEONHOLE_QUARANTINE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dep-quarantine",
    "PIGEONHOLE_OUTPUT_BUS_NAME": "dep-output",
    "PIGEONHOLE_WINDOW_SECONDS": "300",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_SERVICE_NAME": "classifier",
}
LOCAL_ENV = {
    "PIGEONHOLE_MODEL_DIR": "/repo/layers/model",
    "PIGEONHOLE_REVIEW_QUEUE_URL": "http://127.0.0.1:4747/123456789012/loc-review",
    "PIGEONHOLE_QUARANTINE_QUEUE_URL": "http://127.0.0.1:4747/123456789012/loc-quarantine",
    "PIGEONHOLE_OUTPUT_BUS_NAME": "loc-output",
    "POWERTOOLS_SERVICE_NAME": "classifier",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:4747",
}


def test_environments_that_configure_the_same_handler_do_not_differ() -> None:
    """Hosts, prefixes, the model path and variables left at their defaults are no difference."""
    assert environment_differences(DEPLOYED_ENV, "dep", LOCAL_ENV, "loc") == []


def test_a_setting_or_a_powertools_variable_that_differs_is_reported() -> None:
    local = {**LOCAL_ENV, "PIGEONHOLE_WINDOW_SECONDS": "600", "POWERTOOLS_LOG_LEVEL": "DEBUG"}
    local["PIGEONHOLE_REVIEW_QUEUE_URL"] = "http://127.0.0.1:4747/123456789012/loc-quarantine"
    found = {(d.key, d.field, d.deployed, d.local) for d in environment_differences(DEPLOYED_ENV, "dep", local, "loc")}
    assert found == {
        ("function:settings", "window_seconds", 300, 600),
        ("function:settings", "review_queue_url", "<prefix>-review", "<prefix>-quarantine"),
        ("function:environment", "POWERTOOLS_LOG_LEVEL", "INFO", "DEBUG"),
    }


def test_compare_reports_one_sided_resources_and_each_differing_setting() -> None:
    deployed = {"queue:a": {"visibility_timeout": 30, "retention": 60}, "queue:b": {}}
    local = {"queue:a": {"visibility_timeout": 31, "retention": 60, "dead_letter_queue": "a-dlq"}, "rule:c": {}}
    result = compare(deployed, local)
    assert result.only_deployed == ["queue:b"]
    assert result.only_local == ["rule:c"]
    assert result.differences == [
        Difference("queue:a", "dead_letter_queue", None, "a-dlq"),
        Difference("queue:a", "visibility_timeout", 30, 31),
    ]
