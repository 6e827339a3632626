"""Infra test helpers: the CDK app on sys.path, a tiny valid model package, synthesis, layer builds."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
if str(INFRA_DIR) not in sys.path:
    sys.path.insert(0, str(INFRA_DIR))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

REAL_MODEL_DIR = REPO_ROOT / "layers" / "model"
FAKE_MODEL_VERSION = "9.9.9-test"
SKIP_BUNDLING: Mapping[str, Any] = {"aws:cdk:bundling-stacks": []}

# The production default and its opposite on every switch the tests must cover.
DEFAULT_CONFIG: dict[str, Any] = {"oncall_email": "oncall@example.com"}
ALTERNATE_CONFIG: dict[str, Any] = {
    "stack_name": "PigeonholeAlt",
    "prefix": "ph-alt",
    "warm_mode": "snapstart",
    "architecture": "arm64",
    "memory_mb": 2048,
    "timeout_s": 45,
    "batching_window_s": 5,
    "batch_size": 7,
    "max_concurrency": 50,
    "canary_percent": 20,
    "canary_minutes": 7,
    "window_seconds": 600,
    "window_shards": 4,
    "oncall_https_url": "https://pager.example.com/hook",
    "capture_review_rate": 0.8,
    "capture_auto_rate": 0.05,
    "per_label_metrics": True,
    "tracing": False,
}


def write_fake_model(target: Path, version: str = FAKE_MODEL_VERSION) -> Path:
    """A manifest-valid package whose model bytes are not a real model: enough for synthesis."""
    from pigeonhole.model.features import NORMALIZATION
    from pigeonhole.model.manifest import (
        DataFingerprint,
        DriftBaseline,
        FileRef,
        Histogram,
        InputField,
        InputSpec,
        Manifest,
        Thresholds,
    )

    target.mkdir(parents=True, exist_ok=True)
    model_bytes = b"not-a-real-onnx-model"
    vocab_bytes = b"hello\nworld\n"
    (target / "model.onnx").write_bytes(model_bytes)
    (target / "vocab.txt").write_bytes(vocab_bytes)
    (target / "stray-notes.txt").write_text("not listed in the manifest: must not ship\n")

    def ref(name: str, data: bytes) -> FileRef:
        return FileRef(file=name, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))

    manifest = Manifest(
        name="fake",
        version=version,
        created_at="2026-01-01T00:00:00Z",
        model=ref("model.onnx", model_bytes),
        vocabulary=ref("vocab.txt", vocab_bytes),
        classes=["a", "b"],
        input=InputSpec(fields=[InputField(name="text")], normalization=NORMALIZATION),
        thresholds=Thresholds(review_confidence=0.5, top_k=2),
        drift_baseline=DriftBaseline(
            n_events=10, class_prior=[0.5, 0.5], confidence=Histogram(edges=[0.0, 0.5, 1.0], counts=[5, 5]), features={}
        ),
        training_data=DataFingerprint(
            train_sha256="0" * 64,
            train_rows=1,
            eval_sha256="0" * 64,
            eval_rows=1,
            text_column="text",
            label_column="label",
            source="test",
        ),
        metrics={},
    )
    (target / "manifest.json").write_text(manifest.dump(), encoding="utf-8")
    return target


def ref_id(value: Any) -> str | None:
    """The logical id a Ref / Fn::GetAtt points at."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


@dataclass
class Synthesized:
    """One synthesized app: the stack object, its template (as a dict and as an assertions Template)."""

    app: Any
    stack: Any
    template: Any  # aws_cdk.assertions.Template
    resources: dict[str, dict[str, Any]]
    outdir: Path

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == cfn_type}


def synthesize(outdir: Path, config: Mapping[str, Any], *, bundling: bool = False) -> Synthesized:
    """Synthesize the real app (with cdk-nag) for `config`; bundling off unless a test needs the layers."""
    from aws_cdk import assertions

    from app import build_app

    context: dict[str, Any] = {"pigeonhole": dict(config)}
    if not bundling:
        context.update(SKIP_BUNDLING)
    app = build_app(context=context, outdir=str(outdir))
    assembly = app.synth()
    stack_name = config.get("stack_name", "Pigeonhole")
    stack = app.node.find_child(stack_name)
    template_json = json.loads((Path(assembly.directory) / f"{stack_name}.template.json").read_text())
    return Synthesized(
        app=app,
        stack=stack,
        template=assertions.Template.from_json(template_json),
        resources=template_json["Resources"],
        outdir=Path(assembly.directory),
    )


def network_env() -> dict[str, str]:
    """The environment for the one step allowed to reach PyPI (the layer build): without the test
    suite's dead-loopback proxies (tests/conftest.py), everything else unchanged."""
    dead = "http://127.0.0.1:9"
    return {k: v for k, v in os.environ.items() if not (k.upper() in {"HTTP_PROXY", "HTTPS_PROXY"} and v == dead)}


def build_runtime_layer(arch: str, python_version: str = "3.12") -> Path:
    """Build (or reuse from build/layers/) the runtime layer in a subprocess; return its directory."""
    import subprocess

    builder = REPO_ROOT / "layers" / "build_runtime_layer.py"
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('b', {str(builder)!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['b'] = m; spec.loader.exec_module(m)\n"
        f"print(m.build({arch!r}, {python_version!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=network_env(), capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"runtime layer build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def write_tiny_onnx_model(target: Path) -> Path:
    """A real (tiny) TF-IDF + logistic regression ONNX package, for the layer smoke test before
    layers/model exists. Built here, never committed (training libraries stay out of Lambda)."""
    import hashlib

    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from pigeonhole.model.features import NORMALIZATION
    from pigeonhole.model.manifest import (
        DataFingerprint,
        DriftBaseline,
        FileRef,
        Histogram,
        InputField,
        InputSpec,
        Manifest,
        Thresholds,
    )

    texts = ["i lost my card", "card stolen block it", "my card was lost", "top up by bank transfer", "how to top up"]
    labels = ["lost_or_stolen_card", "lost_or_stolen_card", "lost_or_stolen_card", "top_up", "top_up"]
    pipe = Pipeline(
        [("tfidf", TfidfVectorizer(lowercase=False, token_pattern=r"\b\w+\b")), ("clf", LogisticRegression())]
    )
    pipe.fit(texts, labels)
    onx = convert_sklearn(
        pipe,
        initial_types=[("text", StringTensorType([None, 1]))],
        options={id(pipe.steps[-1][1]): {"zipmap": False}},
    )
    data = onx.SerializeToString()
    target.mkdir(parents=True, exist_ok=True)
    (target / "model.onnx").write_bytes(data)
    manifest = Manifest(
        name="tiny",
        version="0.0.1-test",
        created_at="2026-01-01T00:00:00Z",
        model=FileRef(file="model.onnx", sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data)),
        classes=[str(c) for c in pipe.classes_],
        input=InputSpec(fields=[InputField(name="text")], normalization=NORMALIZATION),
        thresholds=Thresholds(review_confidence=0.5, top_k=2),
        drift_baseline=DriftBaseline(
            n_events=5, class_prior=[0.6, 0.4], confidence=Histogram(edges=[0.0, 0.5, 1.0], counts=[2, 3]), features={}
        ),
        training_data=DataFingerprint(
            train_sha256="0" * 64,
            train_rows=5,
            eval_sha256="0" * 64,
            eval_rows=5,
            text_column="text",
            label_column="label",
            source="tests/infra",
        ),
        metrics={},
    )
    (target / "manifest.json").write_text(manifest.dump(), encoding="utf-8")
    return target
