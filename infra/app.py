#!/usr/bin/env python3
"""The CDK app: one Pigeonhole stack, configured from context, checked by cdk-nag. No AWS calls.

Run from Python (`python infra/app.py`) or through the CDK CLI (`npx cdk synth` in infra/).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # pigeonhole_infra, when run from another directory

import aws_cdk as cdk  # noqa: E402

from pigeonhole_infra.config import InfraConfig  # noqa: E402
from pigeonhole_infra.nag import add_checks  # noqa: E402
from pigeonhole_infra.stack import PigeonholeStack  # noqa: E402


def build_app(context: dict[str, object] | None = None, outdir: str | None = None) -> cdk.App:
    """The app with its one stack; `context` adds to cdk.json's context (the CLI passes its own)."""
    app = cdk.App(context=context, outdir=outdir)
    config = InfraConfig.from_context(app.node.get_all_context())
    add_checks(app)
    PigeonholeStack(app, config.stack_name, config=config)
    return app


def main() -> None:
    outdir = None if "CDK_OUTDIR" in os.environ else str(HERE / "cdk.out")
    build_app(context=_cdk_json_context() if "CDK_OUTDIR" not in os.environ else None, outdir=outdir).synth()


def _cdk_json_context() -> dict[str, object]:
    """When run as a plain script (no CDK CLI), read cdk.json's context ourselves."""
    import json

    data = json.loads((HERE / "cdk.json").read_text(encoding="utf-8"))
    context: dict[str, object] = data.get("context", {})
    return context


if __name__ == "__main__":
    main()
