"""Training-only dependencies stay out of what ships to Lambda."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[2] / "functions" / "pigeonhole"
TRAINING_ONLY = re.compile(r"^\s*(?:import|from)\s+(sklearn|skl2onnx|onnx|pigeonhole_tools)\b", re.MULTILINE)


def test_no_shipped_module_imports_training_dependencies() -> None:
    offenders = {
        str(path.relative_to(SHIPPED)): TRAINING_ONLY.findall(path.read_text(encoding="utf-8"))
        for path in SHIPPED.rglob("*.py")
    }
    assert {name: libs for name, libs in offenders.items() if libs} == {}


def test_loading_a_model_does_not_import_training_dependencies() -> None:
    code = (
        "import sys, pigeonhole.model.runtime, pigeonhole.model.session, pigeonhole.model.features; "
        "print(sorted(m for m in ('sklearn', 'skl2onnx', 'onnx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
