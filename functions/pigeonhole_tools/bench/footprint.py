"""What Lambda gets, built here: the runtime layer, the function code, the SDK, and a scikit-learn layer.

Why build them: the cold-start runs import from byte-compiled trees laid out as Lambda lays them out
(`/opt/python` = the layer, the function's code, the runtime's boto3), and the size table measures the
same trees zipped and unzipped. The runtime layer comes from `layers/build_runtime_layer.py` (cached
under `build/layers/`); the rest is cached under `build/bench/`. Lambda's Python runtime provides
boto3/botocore; here they are installed for Python 3.12 beside the layer (same versions as this venv).
The scikit-learn layer is what a scikit-learn-on-Lambda user ships: scikit-learn, scipy, numpy,
joblib, threadpoolctl (+ Powertools' footprint is left out of it, favouring it), trimmed of test suites
the same way as ours.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[3]
LAMBDA_LIMIT_BYTES = 250 * 1024 * 1024  # function + layers, unzipped
PYTHON_VERSION = "3.12"


def layer_builder() -> ModuleType:
    """`layers/build_runtime_layer.py`, loaded from its file (it is a script, not a package)."""
    path = REPO / "layers" / "build_runtime_layer.py"
    spec = importlib.util.spec_from_file_location("pigeonhole_build_runtime_layer", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Tree:
    """A directory Lambda would unpack, and its sizes."""

    path: Path
    unzipped_bytes: int
    zipped_bytes: int


def measure(path: Path) -> Tree:
    builder = layer_builder()
    return Tree(path, builder.tree_bytes(path), builder.zipped_bytes(path))


def _compile(root: Path, interpreter: str) -> None:
    subprocess.run(  # noqa: S603 (an interpreter find_python verified, our own tree)
        [interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(root)],
        check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""},
    )


def _pip_target(target: Path, packages: list[str], arch: str | None) -> None:
    builder = layer_builder()
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    if arch is not None:
        for tag in builder.platform_tags(arch):
            cmd += ["--platform", tag]
        cmd += ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    cmd += ["--target", str(target), *packages]
    subprocess.run(cmd, check=True)  # noqa: S603 (our interpreter's pip)


def _pinned(*names: str) -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in names]


def runtime_layer(arch: str) -> Path:
    """The runtime layer's directory holding ``python/`` (built by the project's own script)."""
    built: Path = layer_builder().build(arch, PYTHON_VERSION)
    return built


def function_code(cache: Path, interpreter: str | None) -> Path:
    """`functions/pigeonhole` as the function's asset, byte-compiled for Lambda's Python (rebuilt each run)."""
    target = cache / "function"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(
        REPO / "functions" / "pigeonhole", target / "pigeonhole", ignore=shutil.ignore_patterns("__pycache__")
    )
    if interpreter:
        _compile(target, interpreter)
    return target


def sdk(cache: Path, interpreter: str | None) -> Path:
    """boto3 + botocore for Python 3.12, as Lambda's runtime provides them."""
    target = cache / "sdk-py312"
    if not (target / ".done").exists():
        shutil.rmtree(target, ignore_errors=True)
        _pip_target(target, _pinned("boto3", "botocore"), arch=None)
        if interpreter:
            _compile(target, interpreter)
        (target / ".done").touch()
    return target


SKLEARN_TRIM = ("sklearn/**/tests", "scipy/**/tests", "numpy/**/tests", "bin")  # scipy imports numpy.f2py


def sklearn_layer(cache: Path, arch: str, interpreter: str | None) -> Path:
    """The scikit-learn alternative's layer (its ``python/`` inside), trimmed of test suites like ours."""
    root = cache / f"sklearn-layer-{arch}"
    site = root / "python"
    if not (root / ".done").exists():
        shutil.rmtree(root, ignore_errors=True)
        _pip_target(site, _pinned("scikit-learn", "scipy", "numpy", "joblib", "threadpoolctl"), arch=arch)
        for pattern in SKLEARN_TRIM:
            for match in sorted(site.glob(pattern), reverse=True):
                if match.is_dir():
                    shutil.rmtree(match, ignore_errors=True)
        for stub in site.rglob("*.pyi"):
            stub.unlink()
        if interpreter:
            _compile(site, interpreter)
        (root / ".done").touch()
    return root


def sizes(cache: Path, interpreter: str | None, archs: tuple[str, ...] = ("x86_64", "arm64")) -> dict[str, Any]:
    """Zipped and unzipped bytes per architecture: runtime layer, model, function code, and scikit-learn's."""
    model = measure(REPO / "layers" / "model")
    code = measure(function_code(cache, interpreter))
    out: dict[str, Any] = {"limit_bytes": LAMBDA_LIMIT_BYTES, "model": model.__dict__, "function_code": code.__dict__}
    for arch in archs:
        layer = runtime_layer(arch)
        info = layer_builder().read_info(layer)
        sk = measure(sklearn_layer(cache, arch, interpreter))
        total = info.unzipped_bytes + model.unzipped_bytes + code.unzipped_bytes
        out[arch] = {
            "runtime_layer": {
                "path": str(layer),
                "unzipped_bytes": info.unzipped_bytes,
                "zipped_bytes": info.zipped_bytes,
                "byte_compiled": info.byte_compiled,
                "packages": info.packages,
            },
            "sklearn_layer": {**sk.__dict__, "path": str(sk.path)},
            "total_unzipped_bytes": total,
            "headroom_bytes": LAMBDA_LIMIT_BYTES - total,
        }
    return _paths_to_str(out)


def _paths_to_str(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _paths_to_str(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value
