"""cdk-nag (AwsSolutions) and cfn-lint on the synthesized templates, and the CDK CLI path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from infra_helpers import INFRA_DIR, Synthesized, network_env

from pigeonhole_infra.nag import acknowledgements

CFN_LINT = Path(sys.executable).with_name("cfn-lint")


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_cdk_nag_has_no_unacknowledged_findings(which: str, request: pytest.FixtureRequest) -> None:
    """Synthesis raises on any finding; the report must also say every plugin passed."""
    s: Synthesized = request.getfixturevalue(which)
    report = json.loads((s.outdir / "validation-report.json").read_text())
    for plugin in report["pluginReports"]:  # empty when every plugin passed
        assert plugin["conclusion"] == "success", plugin["violations"]


def test_cdk_nag_is_active(tmp_path: Path) -> None:
    """The same checks fail a stack with an unencrypted, plain-HTTP, DLQ-less queue: they really run."""
    import aws_cdk as cdk
    from aws_cdk import aws_sqs as sqs

    from pigeonhole_infra.nag import add_checks

    app = cdk.App(outdir=str(tmp_path))
    add_checks(app)
    stack = cdk.Stack(app, "Bad")
    sqs.Queue(stack, "Plain", encryption=sqs.QueueEncryption.UNENCRYPTED)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert {"AwsSolutions-SQS2", "AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules


def test_every_acknowledgement_has_a_reason(default_stack: Synthesized) -> None:
    acks = acknowledgements(default_stack.stack)
    assert acks
    for ack in acks:
        assert ack.rule.startswith("AwsSolutions-"), ack
        assert len(ack.reason) >= 80, f"{ack.rule} on {ack.path}: the reason must explain, not label"
    # Acknowledgements are scoped to constructs, never the whole stack.
    assert all(ack.path for ack in acks)


@pytest.mark.parametrize("which", ["default_stack", "alternate_stack"])
def test_cfn_lint_reports_no_errors(which: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(which)
    template = s.outdir / f"{s.stack.stack_name}.template.json"
    result = subprocess.run(
        [str(CFN_LINT), "--non-zero-exit-code", "error", "--ignore-checks", "W3005", "--", str(template)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cdk_cli_synthesizes_with_layers(tmp_path: Path, fake_model_dir: Path, runtime_layers: dict[str, Path]) -> None:
    """`npx cdk synth` with the committed CLI pin, bundling both layers (the runtime one from the cache).

    Skipped where the CLI is not installed (cd infra && npm ci).
    """
    cdk = INFRA_DIR / "node_modules" / ".bin" / "cdk"
    if not cdk.exists() or shutil.which("node") is None:
        pytest.skip("the CDK CLI is not installed (cd infra && npm ci)")
    env = {
        **network_env(),
        "AWS_EC2_METADATA_DISABLED": "true",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    out = tmp_path / "cdk.out"
    result = subprocess.run(
        [
            str(cdk),
            "synth",
            "--no-notices",
            "--quiet",
            "--app",
            f"{sys.executable} app.py",  # cdk.json's app, with the interpreter running these tests
            "--output",
            str(out),
            "--context",
            f"pigeonhole:model_dir={fake_model_dir}",
            "--context",
            "pigeonhole:oncall=none",  # cdk.json requires an endpoint; this synth is a sandbox
        ],
        cwd=INFRA_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (out / "Pigeonhole.template.json").is_file()
    assets = json.loads((out / "Pigeonhole.assets.json").read_text())["files"]
    staged = [out / a["source"]["path"] for a in assets.values() if a["source"].get("packaging") == "zip"]
    runtime = [p for p in staged if (p / "python" / "onnxruntime").is_dir()]
    model = [p for p in staged if (p / "model" / "manifest.json").is_file()]
    code = [p for p in staged if (p / "pigeonhole" / "__init__.py").is_file()]
    assert len(runtime) == len(model) == len(code) == 1
    assert not (model[0] / "model" / "stray-notes.txt").exists()  # only what the manifest lists ships
    assert sorted(p.name for p in code[0].iterdir()) == ["pigeonhole"]  # no tools, no training code
