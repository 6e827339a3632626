"""Summaries of repeated measurements, and the machine and package versions printed with them.

Every figure in docs/benchmarks.md is a summary of several runs: the median and a spread (the
interquartile range and min..max), never one sample, so a noisy neighbour on a shared machine shows.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
from collections.abc import Sequence
from importlib import metadata
from typing import Any

PACKAGES = (
    "onnxruntime",
    "numpy",
    "scikit-learn",
    "scipy",
    "joblib",
    "skl2onnx",
    "boto3",
    "botocore",
    "moto",
    "aws-lambda-powertools",
    "aws-xray-sdk",
    "pydantic",
)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, p99, interquartile range and min..max of repeated samples, with their count."""
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p99": percentile(values, 99),
        "q1": percentile(values, 25),
        "q3": percentile(values, 75),
        "min": min(values),
        "max": max(values),
    }


def spread(summary: dict[str, float], digits: int = 1) -> str:
    """``median (IQR q1–q3)`` for a table cell."""
    return f"{summary['median']:.{digits}f} ({summary['q1']:.{digits}f}–{summary['q3']:.{digits}f})"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU model, cores, load, OS, Python."""
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_at_start": load_average(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_head(cwd: str) -> str:
    git = shutil.which("git")
    if git is None:
        return "unknown"
    try:
        out = subprocess.run(  # noqa: S603 (git found on PATH, fixed arguments)
            [git, "rev-parse", "--short", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()
