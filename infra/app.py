#!/usr/bin/env python3
"""The CDK app: one Pigeonhole stack, configured from context, checked by cdk-nag. No AWS calls.

Run from Python (`python infra/app.py`) or through the CDK CLI (`npx cdk synth` in infra/).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# pigeonhole_infra, and the `pigeonhole` package that ships (also without an editable install).
sys.path[:0] = [str(HERE), str(HERE.parent / "functions")]

import aws_cdk as cdk  # noqa: E402

from pigeonhole_infra.config import InfraConfig  # noqa: E402
from pigeonhole_infra.nag import add_checks  # noqa: E402
from pigeonhole_infra.stack import PigeonholeStack  # noqa: E402


def build_app(context: dict[str, object] | None = None, outdir: str | None = None) -> cdk.App:
    """The app with its one stack; `context` adds to cdk.json's context.

    Under the CDK CLI (which sets CDK_OUTDIR) the CLI passes cdk.json's context itself; run as a
    plain script or from tests, cdk.json is read here, so every path synthesizes the same feature flags.
    """
    if "CDK_OUTDIR" not in os.environ:
        context = {**cdk_json_context(), **(context or {})}
    app = cdk.App(context=context, outdir=outdir)
    config = InfraConfig.from_context(app.node.get_all_context())
    add_checks(app)
    PigeonholeStack(app, config.stack_name, config=config)
    return app


def main(argv: list[str] | None = None) -> None:
    """`python infra/app.py [-c key=value ...]`: the CLI's `-c` (as strings), for `make synth` and CI."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    context: dict[str, object] = {}
    for item in args.context:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--context expects KEY=VALUE, got {item!r}")
        context[key] = value
    outdir = None if "CDK_OUTDIR" in os.environ else str(HERE / "cdk.out")
    build_app(context=context, outdir=outdir).synth()


def cdk_json_context() -> dict[str, object]:
    """cdk.json's context (feature flags and the default `pigeonhole` configuration)."""
    data = json.loads((HERE / "cdk.json").read_text(encoding="utf-8"))
    context: dict[str, object] = data.get("context", {})
    return context


if __name__ == "__main__":
    main()
