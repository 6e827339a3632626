"""Build the Lambda runtime layer (onnxruntime + numpy + Powertools) without Docker, and cache it.

Why this exists: Docker is not available everywhere we build, and `aws-lambda-python-alpha` needs it.
pip can resolve wheels for Lambda's platform from any host when it is told the target platform,
Python version and implementation, and refuses source builds (`--only-binary=:all:`).

Why it trims: onnxruntime ships its transformer optimizers, quantization and tooling (and the
protobuf/flatbuffers only they import) and a copy of its C library for other packages to link, numpy
ships its test-suite, test-only extensions, headers, f2py and type stubs; none of it is imported at
inference time and all of it counts against Lambda's 250 MB unzipped limit (function + layers). Each
removal is listed with its reason in TRIM_GLOBS, and the build fails if a shared object left in the
layer links against one it removed (`_check_links`). It also drops the AWS SDK (botocore and
its own dependencies) that aws-xray-sdk pulls in: Lambda's Python runtime provides a matching
boto3 + botocore pair, and a second botocore in /opt/python would shadow the runtime's and
mismatch its boto3.

Why it byte-compiles with the target interpreter: a .pyc is only valid for the Python that wrote it
(numpy imported in ~210 ms without matching .pyc against ~92 ms with them), and it uses
`unchecked-hash` pycs because asset zips normalise file times, which would make timestamp-checked
pycs stale on Lambda, where /opt is read-only and they could never be rewritten.

Why a hashed lock: the layer must be the same bytes on every build machine and a changed or
substituted wheel must fail the build, so `runtime/requirements.txt` pins every transitive
dependency with its wheels' sha256 (``--lock`` regenerates it from `runtime/requirements.in`) and
pip installs it with ``--require-hashes``.

Usage: ``python layers/build_runtime_layer.py --arch arm64`` prints the directory that holds
``python/`` (the layer's content). Builds are cached under ``build/layers/`` keyed by the
requirements, target and recipe, so the second run is instant.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = Path(__file__).resolve().parent / "runtime" / "requirements.txt"  # the hashed lock
REQUIREMENTS_IN = REQUIREMENTS.with_suffix(".in")  # what the layer asks for; `--lock` resolves it
LOCK_HEADER = (
    "# The runtime layer's lock: every package pinned with the sha256 of each wheel, for both Lambda\n"
    "# architectures (a universal resolution for Python 3.12). Generated from requirements.in by\n"
    "# `make lock`; do not edit by hand. The layer build installs it with `pip install --require-hashes`,\n"
    "# and the layer's CDK asset hash is derived from this file's bytes (build_runtime_layer.cache_key).\n"
)
CACHE_ROOT = REPO_ROOT / "build" / "layers"

# Lambda architecture name -> the machine name in manylinux platform tags.
ARCH_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
# Lambda's python3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34): every manylinux tag from
# 2_34 down to 2_17 (manylinux2014) is loadable there. pip does not widen a single `--platform`
# to older glibc tags, so all of them are listed (pydantic-core, for one, ships only 2_17 wheels).
GLIBC_MAX_MINOR = 34
GLIBC_MIN_MINOR = 17

# Bump when the trimming or compiling below changes, so cached layers are rebuilt.
RECIPE_VERSION = "4"

# Paths (globs, relative to python/) removed after install, each with why it is safe to remove.
TRIM_GLOBS: tuple[tuple[str, str], ...] = (
    ("onnxruntime/transformers", "transformer graph optimizers: offline tooling"),
    ("onnxruntime/quantization", "quantization: done when the model is built, not at inference"),
    ("onnxruntime/tools", "model conversion/inspection tooling"),
    ("onnxruntime/datasets", "sample models"),
    ("onnxruntime/backend", "ONNX backend-test adapter (imports onnx, which is not shipped)"),
    ("numpy/tests", "numpy's own test-suite"),
    ("numpy/*/tests", "numpy's own test-suite"),
    ("numpy/*/*/tests", "numpy's own test-suite"),
    ("numpy/f2py", "Fortran wrapper generator, imported lazily and never by inference"),
    ("numpy/_pyinstaller", "PyInstaller hooks"),
    ("botocore", "Lambda's runtime provides botocore; a copy here would shadow it"),
    ("botocore-*.dist-info", "see botocore"),
    ("urllib3", "only botocore needs it; the runtime provides it"),
    ("urllib3-*.dist-info", "see urllib3"),
    ("dateutil", "only botocore needs it; the runtime provides it"),
    ("python_dateutil-*.dist-info", "see dateutil"),
    ("six.py", "only python-dateutil needs it; the runtime provides it"),
    ("six-*.dist-info", "see six.py"),
    ("bin", "console scripts with build-host shebangs"),
    # Measured (du by package, x86_64, recipe 3: 145.2 MB) and checked by tests/infra/test_infra_layers.py, which
    # runs a batch through the handlers with only this layer (and an SDK standing in for the runtime's) on sys.path.
    (
        "onnxruntime/capi/libonnxruntime.so*",
        "the ORT C-API library, shipped for other packages (onnxruntime-genai) to link against: the Python "
        "extension is self-contained (no DT_NEEDED on it, checked by _check_links); 34.8 MB x86_64, 27.2 MB arm64",
    ),
    ("numpy/_core/_*_tests.cpython-*.so", "numpy's test-only extension modules (multiarray, umath, rational...)"),
    ("numpy/_core/_simd.cpython-*.so", "numpy's SIMD test module (1.5 MB), imported only by its tests"),
    ("numpy/_core/include", "C headers for building extensions against numpy"),
    ("numpy/_core/lib", "static npymath and pkg-config files for building extensions"),
    ("numpy/random/lib", "static npyrandom for building extensions"),
    ("numpy/conftest.py", "pytest configuration of numpy's test-suite"),
    ("google", "protobuf: onnxruntime imports it only from its tools (trimmed above), Powertools only for Kafka"),
    ("protobuf-*.dist-info", "see google"),
    ("flatbuffers", "onnxruntime imports it only from its ORT-format tools (trimmed above)"),
    ("flatbuffers-*.dist-info", "see flatbuffers"),
    ("wrapt-stubs", "type stubs"),
    ("*.dist-info/RECORD", "pip's uninstall manifest: nothing uninstalls from a layer, and it lists trimmed files"),
)
# File suffixes removed everywhere: type stubs, Cython declarations and any bytecode of the build host's Python.
TRIM_SUFFIXES = (".pyi", ".pxd")


@dataclass(frozen=True)
class LayerInfo:
    """What was built, recorded next to the layer so callers and reports need not measure again."""

    arch: str
    python_version: str
    key: str
    byte_compiled: bool
    unzipped_bytes: int
    zipped_bytes: int
    packages: list[str]


def platform_tags(arch: str) -> list[str]:
    """The manylinux platform tags Lambda's Amazon Linux 2023 accepts for this architecture, newest first."""
    machine = ARCH_MACHINE[arch]
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(GLIBC_MAX_MINOR, GLIBC_MIN_MINOR - 1, -1)]
    return [*tags, f"manylinux2014_{machine}"]


def find_python(version: str) -> str | None:
    """A working interpreter for `version` (e.g. "3.12"), or None: PATH first, then pyenv installs.

    A pyenv shim on PATH may exist without the version being selected, so each candidate is run.
    """
    candidates: list[str] = []
    override = os.environ.get("PIGEONHOLE_LAYER_PYTHON")
    if override:
        candidates.append(override)
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True)
    candidates += [f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"]
    for candidate in candidates:
        try:
            out = subprocess.run(  # noqa: S603 (candidate interpreters we list ourselves)
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    return None


def cache_key(arch: str, python_version: str, byte_compiled: bool, requirements: Path = REQUIREMENTS) -> str:
    """Content key of a build: requirements, target, recipe and whether target .pyc files exist."""
    digest = hashlib.sha256()
    for part in (requirements.read_bytes(), arch.encode(), python_version.encode(), RECIPE_VERSION.encode()):
        digest.update(part)
        digest.update(b"\0")
    digest.update(repr(TRIM_GLOBS).encode() + repr(TRIM_SUFFIXES).encode() + str(byte_compiled).encode())
    return digest.hexdigest()[:16]


def tree_bytes(root: Path) -> int:
    """Apparent size of every regular file under root: what Lambda counts against 250 MB unzipped."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def zipped_bytes(root: Path) -> int:
    """Size of root zipped with deflate, as the asset upload will be (approximately: zlib levels differ)."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "layer.zip"
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(root))
        return target.stat().st_size


def _trim(site: Path) -> list[str]:
    """Remove TRIM_GLOBS and TRIM_SUFFIXES; return the names of the shared libraries removed."""
    removed_libraries: list[str] = []
    for pattern, _why in TRIM_GLOBS:
        for match in site.glob(pattern):
            files = match.rglob("*") if match.is_dir() else [match]
            removed_libraries += [f.name for f in files if ".so" in f.suffixes]
            if match.is_dir():
                shutil.rmtree(match)
            else:
                match.unlink()
    for path in list(site.rglob("*")):
        if path.is_dir() and path.name == "__pycache__":
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.suffix in TRIM_SUFFIXES:
            path.unlink()
    return removed_libraries


def elf_needed(path: Path) -> list[str]:
    """The DT_NEEDED names of a 64-bit little-endian ELF file (both Lambda CPUs), or [] if it is not one.

    A few lines of ELF instead of `readelf`, which not every build host has: section headers, the
    SHT_DYNAMIC section, and its string table (the section its sh_link names).
    """
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    shoff, shentsize, shnum = struct.unpack_from("<Q", data, 0x28)[0], *struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    needed: list[str] = []
    for _name, kind, _flags, _addr, offset, size, link, _info, _align, _entsize in sections:
        if kind != 6:  # SHT_DYNAMIC
            continue
        strings_offset = sections[link][4]
        for tag, value in struct.iter_unpack("<qQ", data[offset : offset + size]):
            if tag == 0:  # DT_NULL
                break
            if tag == 1:  # DT_NEEDED
                start = strings_offset + value
                needed.append(data[start : data.index(b"\0", start)].decode())
    return needed


def _check_links(site: Path, removed_libraries: list[str]) -> None:
    """Fail the build if a shared object left in the layer links against one the trim removed."""
    for path in site.rglob("*.so*"):
        if not path.is_file():
            continue
        for name in elf_needed(path):
            gone = [lib for lib in removed_libraries if lib.startswith(name)]
            if gone and not list(path.parent.glob(name + "*")):
                raise RuntimeError(f"{path.relative_to(site)} needs {name}, which the trim removed ({gone})")


def _pip_install(site: Path, arch: str, python_version: str, requirements: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    for tag in platform_tags(arch):
        cmd += ["--platform", tag]
    cmd += [
        "--only-binary=:all:",
        "--require-hashes",
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--target",
        str(site),
        "-r",
        str(requirements),
    ]
    subprocess.run(cmd, check=True)  # noqa: S603 (our interpreter's pip, our requirements)


def _compile(site: Path, interpreter: str) -> None:
    subprocess.run(  # noqa: S603 (an interpreter find_python verified)
        [interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(site)],
        check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""},
    )


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise builds of one key across processes (pytest workers, a parallel `cdk synth`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build(arch: str = "x86_64", python_version: str = "3.12", cache_root: Path = CACHE_ROOT) -> Path:
    """Return a directory whose `python/` folder is the layer content, building it if not cached."""
    if arch not in ARCH_MACHINE:
        raise ValueError(f"unknown Lambda architecture {arch!r}; expected one of {sorted(ARCH_MACHINE)}")
    interpreter = find_python(python_version)
    key = cache_key(arch, python_version, byte_compiled=interpreter is not None)
    final = cache_root / f"runtime-py{python_version}-{arch}-{key}"
    with _locked(cache_root / f".runtime-{key}.lock"):
        if (final / "layer-info.json").is_file():
            return final
        with tempfile.TemporaryDirectory(dir=cache_root, prefix=".building-") as tmp:
            staging = Path(tmp) / "layer"
            site = staging / "python"
            _pip_install(site, arch, python_version, REQUIREMENTS)
            _check_links(site, _trim(site))
            if interpreter is not None:
                _compile(site, interpreter)
            else:
                print(
                    f"warning: no python{python_version} found; the layer is not byte-compiled "
                    "(cold starts pay for compiling on every container)",
                    file=sys.stderr,
                )
            packages = sorted(p.name.removesuffix(".dist-info") for p in site.glob("*.dist-info"))
            info = LayerInfo(
                arch=arch,
                python_version=python_version,
                key=key,
                byte_compiled=interpreter is not None,
                unzipped_bytes=tree_bytes(site),
                zipped_bytes=zipped_bytes(staging),
                packages=packages,
            )
            (staging / "layer-info.json").write_text(json.dumps(asdict(info), indent=2) + "\n", encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)
    return final


def read_info(layer_dir: Path) -> LayerInfo:
    """The recorded LayerInfo of a built layer directory."""
    return LayerInfo(**json.loads((layer_dir / "layer-info.json").read_text(encoding="utf-8")))


def copy_layer(layer_dir: Path, output_dir: Path) -> None:
    """Place the layer content (`python/`) into output_dir, hard-linking where possible (same disk, no copy)."""

    def link_or_copy(src: str, dst: str) -> object:
        try:
            os.link(src, dst)
            return dst
        except OSError:
            return shutil.copy2(src, dst)

    shutil.copytree(layer_dir / "python", Path(output_dir) / "python", copy_function=link_or_copy, dirs_exist_ok=True)


def write_lock(python_version: str = "3.12", source: Path = REQUIREMENTS_IN, lock: Path = REQUIREMENTS) -> None:
    """Resolve `source` into a hashed lock valid on every Lambda architecture (uv's universal mode).

    Why uv: pip-compile resolves for the host only; uv resolves once for all platforms and records
    the hash of every wheel of each pinned version, so one lock serves x86_64 and arm64.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "requirements.txt"
        subprocess.run(  # noqa: S603 (uv from this interpreter's environment, our own files)
            [
                sys.executable,
                "-m",
                "uv",
                "pip",
                "compile",
                str(source),
                "--universal",
                "--python-version",
                python_version,
                "--generate-hashes",
                "--no-header",
                "--quiet",
                "--output-file",
                str(out),
            ],
            check=True,
            cwd=source.parent,
        )
        lock.write_text(LOCK_HEADER + out.read_text(encoding="utf-8"), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--arch", choices=sorted(ARCH_MACHINE), action="append", help="repeatable; default both")
    parser.add_argument("--python-version", default="3.12")
    parser.add_argument("--lock", action="store_true", help="re-resolve requirements.in into the hashed lock")
    args = parser.parse_args(argv)
    if args.lock:
        write_lock(args.python_version)
        print(f"wrote {REQUIREMENTS}")
        return 0
    for arch in args.arch or sorted(ARCH_MACHINE):
        layer = build(arch, args.python_version)
        info = read_info(layer)
        print(
            f"{arch}: {layer} unzipped={info.unzipped_bytes / 1e6:.1f} MB zipped={info.zipped_bytes / 1e6:.1f} MB "
            f"byte_compiled={info.byte_compiled}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
