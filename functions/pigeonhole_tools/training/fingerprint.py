"""What a build records about where it ran: library versions and the platform fingerprint."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

LIBRARIES = ("numpy", "scipy", "scikit-learn", "skl2onnx", "onnx", "onnxruntime", "pydantic")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = "absent"
    return versions


# CPU features that select different float kernels in BLAS and onnxruntime (and so a model's last bits).
_KERNEL_FLAGS = (
    "sse4_1",
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "asimd",
)


def platform_fingerprint() -> dict[str, object]:
    """What decides a build's float bits besides library versions: CPU, kernel flags and BLAS threading.

    Byte identity of a rebuilt model is a property of one machine; tests compare bytes only where
    this fingerprint (and the library versions) match, and compare quality everywhere else.
    """
    from threadpoolctl import threadpool_info  # a scikit-learn dependency: training only

    cpu_model, flags = "unknown", set[str]()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and cpu_model == "unknown":
                cpu_model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    blas = sorted(
        ({k: info.get(k) for k in keys} for info in threadpool_info() if info.get("user_api") == "blas"),
        key=lambda entry: (str(entry["internal_api"]), str(entry["version"])),
    )
    return {
        "machine": platform.machine(),
        "cpu_model": cpu_model,
        "kernel_flags": sorted(f for f in _KERNEL_FLAGS if f in flags),
        "blas": blas,
    }
