"""Infra fixtures. Synthesis costs 3-8 s, so each configuration is synthesized once per session
and every module asserts against the same templates."""

from __future__ import annotations

from pathlib import Path

import pytest
from infra_helpers import (
    ALTERNATE_CONFIG,
    DEFAULT_CONFIG,
    Synthesized,
    build_runtime_layer,
    synthesize,
    write_fake_model,
)


@pytest.fixture(scope="session")
def fake_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def default_stack(tmp_path_factory: pytest.TempPathFactory, fake_model_dir: Path) -> Synthesized:
    """Provisioned concurrency, x86_64, e-mail subscription: synthesized once, with cdk-nag."""
    return synthesize(tmp_path_factory.mktemp("synth-default"), {**DEFAULT_CONFIG, "model_dir": str(fake_model_dir)})


@pytest.fixture(scope="session")
def alternate_stack(tmp_path_factory: pytest.TempPathFactory, fake_model_dir: Path) -> Synthesized:
    """SnapStart, arm64, custom canary, HTTPS subscription, 10-minute windows."""
    return synthesize(tmp_path_factory.mktemp("synth-alt"), {**ALTERNATE_CONFIG, "model_dir": str(fake_model_dir)})


@pytest.fixture(scope="session")
def runtime_layers() -> dict[str, Path]:
    """Both architectures' runtime layers, built once (cached under build/layers/ across runs)."""
    return {arch: build_runtime_layer(arch) for arch in ("x86_64", "arm64")}
