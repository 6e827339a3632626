"""The two Lambda layers, bundled locally (no Docker): the runtime stack and the model package.

Both use CDK's `ILocalBundling` hook, so `cdk synth` builds them itself and a test app can skip
bundling with the context `aws:cdk:bundling-stacks: []`.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from pigeonhole.constants import MANIFEST_FILE
from pigeonhole.model.manifest import Manifest, load_manifest, read_verified
from pigeonhole_infra.config import REPO_ROOT

LAYER_BUILDER = REPO_ROOT / "layers" / "build_runtime_layer.py"
RUNTIME_LAYER_SOURCE = REPO_ROOT / "layers" / "runtime"
MODEL_LAYER_DIR = "model"  # a layer's folders land under /opt: /opt/model = PIGEONHOLE_MODEL_DIR

# Only asked for if local bundling declines, which ours never does (it raises instead): Docker is
# never pulled or run.
_UNUSED_IMAGE = cdk.DockerImage.from_registry("public.ecr.aws/sam/build-python3.12")


def load_builder() -> ModuleType:
    """Import layers/build_runtime_layer.py (a script, not a package) by path, once."""
    name = "pigeonhole_build_runtime_layer"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, LAYER_BUILDER)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {LAYER_BUILDER}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def lambda_architecture(arch: str) -> lambda_.Architecture:
    return lambda_.Architecture.ARM_64 if arch == "arm64" else lambda_.Architecture.X86_64


def lambda_runtime(python_version: str) -> lambda_.Runtime:
    return {"3.12": lambda_.Runtime.PYTHON_3_12, "3.13": lambda_.Runtime.PYTHON_3_13}[python_version]


@jsii.implements(cdk.ILocalBundling)
class _RuntimeLayerBundler:
    """Builds (or reuses from build/layers/) the pip-installed runtime layer and places it in the asset."""

    def __init__(self, arch: str, python_version: str) -> None:
        self.arch = arch
        self.python_version = python_version

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_options: Any) -> bool:
        builder = load_builder()
        layer_dir = builder.build(self.arch, self.python_version)
        builder.copy_layer(layer_dir, Path(output_dir))
        return True


@jsii.implements(cdk.ILocalBundling)
class _ModelLayerBundler:
    """Copies the verified model package (manifest + the files it lists) to `model/` in the asset."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_options: Any) -> bool:
        manifest = load_manifest(self.model_dir)
        target = Path(output_dir) / MODEL_LAYER_DIR
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.model_dir / MANIFEST_FILE, target / MANIFEST_FILE)
        for ref in (manifest.model, manifest.vocabulary, manifest.golden):
            if ref is not None:
                (target / ref.file).write_bytes(read_verified(self.model_dir, ref))
        return True


def read_model_manifest(model_dir: Path) -> Manifest:
    """The manifest of the package to deploy, with every file checked against its hash.

    Why at synth time: the alarms need the model version (the ModelVersion dimension), and a
    package that would fail its integrity check on Lambda should fail the deploy instead.
    """
    manifest = load_manifest(model_dir)
    for ref in (manifest.model, manifest.vocabulary, manifest.golden):
        if ref is not None:
            read_verified(model_dir, ref)
    return manifest


class RuntimeLayer(Construct):
    """onnxruntime + numpy + Powertools for one architecture and Python version."""

    def __init__(self, scope: Construct, construct_id: str, *, arch: str, python_version: str) -> None:
        super().__init__(scope, construct_id)
        builder = load_builder()
        byte_compiled = builder.find_python(python_version) is not None
        key = builder.cache_key(arch, python_version, byte_compiled=byte_compiled)
        runtime = lambda_runtime(python_version)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(
                str(RUNTIME_LAYER_SOURCE),
                asset_hash=f"runtime-{arch}-{key}",
                asset_hash_type=cdk.AssetHashType.CUSTOM,
                bundling=cdk.BundlingOptions(image=_UNUSED_IMAGE, local=_RuntimeLayerBundler(arch, python_version)),
            ),
            compatible_runtimes=[runtime],
            compatible_architectures=[lambda_architecture(arch)],
            description=f"Pigeonhole runtime: onnxruntime, numpy, Powertools (py{python_version}, {arch})",
        )


class ModelLayer(Construct):
    """The model package under /opt/model; its manifest version names the ModelVersion dimension."""

    def __init__(self, scope: Construct, construct_id: str, *, model_dir: Path) -> None:
        super().__init__(scope, construct_id)
        self.manifest = read_model_manifest(model_dir)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(
                str(model_dir),
                bundling=cdk.BundlingOptions(image=_UNUSED_IMAGE, local=_ModelLayerBundler(model_dir)),
            ),
            description=f"Pigeonhole model {self.manifest.name} {self.manifest.version} "
            f"(sha256 {self.manifest.model.sha256[:12]})",
        )
