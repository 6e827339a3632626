"""The runtime layer: trimmed, byte-compiled for the target Python, within Lambda's size limit with the
model and code, built for the right CPU, and able to load the model and classify on python3.12."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path

import pytest
from infra_helpers import REAL_MODEL_DIR, REPO_ROOT, write_tiny_onnx_model

from pigeonhole_infra.constructs.layers import load_builder

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function code + all layers, unzipped
LAYER_TARGET = 120 * 10**6  # issue 10: the runtime layer at most 120 MB unzipped on either architecture
MODEL_BUDGET = 50 * 1024 * 1024  # assumed for the model package until layers/model exists
ELF_MACHINE = {"x86_64": 62, "arm64": 183}
builder = load_builder()


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _model_bytes() -> int:
    manifest = REAL_MODEL_DIR / "manifest.json"
    if not manifest.is_file():
        return MODEL_BUDGET
    data = json.loads(manifest.read_text())
    files = [data["model"]["file"]] + ([data["vocabulary"]["file"]] if data.get("vocabulary") else [])
    return manifest.stat().st_size + sum((REAL_MODEL_DIR / f).stat().st_size for f in files)


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_layers_and_code_fit_lambdas_unzipped_limit(arch: str, runtime_layers: dict[str, Path]) -> None:
    info = builder.read_info(runtime_layers[arch])
    code = _tree_bytes(REPO_ROOT / "functions" / "pigeonhole")
    total = info.unzipped_bytes + _model_bytes() + code
    print(  # the numbers, for the report (pytest -s)
        f"{arch}: runtime layer {info.unzipped_bytes / 1e6:.1f} MB unzipped / {info.zipped_bytes / 1e6:.1f} MB "
        f"zipped; model {_model_bytes() / 1e6:.1f} MB; code {code / 1e6:.2f} MB; total {total / 1e6:.1f} MB"
    )
    assert total < LAMBDA_UNZIPPED_LIMIT
    assert info.zipped_bytes < info.unzipped_bytes


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_runtime_layer_is_trimmed_and_built_for_its_cpu(arch: str, runtime_layers: dict[str, Path]) -> None:
    site = runtime_layers[arch] / "python"
    info = builder.read_info(runtime_layers[arch])
    for gone in ("onnxruntime/transformers", "onnxruntime/quantization", "onnxruntime/tools", "numpy/_core/tests"):
        assert not (site / gone).exists(), gone
    for gone in ("google", "flatbuffers", "numpy/_core/include", "wrapt-stubs"):
        assert not (site / gone).exists(), gone
    assert not list((site / "onnxruntime" / "capi").glob("libonnxruntime.so*")), "the ORT C library is trimmed"
    assert not list(site.glob("*.dist-info/RECORD"))
    assert not list(site.rglob("*.pxd"))
    assert not list((site / "numpy" / "_core").glob("_*_tests.cpython-*.so"))
    assert info.unzipped_bytes <= LAYER_TARGET, f"{arch}: {info.unzipped_bytes / 1e6:.1f} MB unzipped"
    assert not (site / "botocore").exists(), "the Lambda runtime provides botocore; a copy would shadow it"
    assert not list(site.rglob("*.pyi"))
    assert (site / "aws_lambda_powertools").is_dir()
    assert (site / "pydantic_core").is_dir()
    (extension,) = (site / "onnxruntime" / "capi").glob("onnxruntime_pybind11_state*.so")
    header = extension.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    assert struct.unpack("<H", header[18:20])[0] == ELF_MACHINE[arch]
    assert "cpython-312" in extension.name


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_the_build_reads_elf_links_and_refuses_a_trim_that_breaks_one(
    arch: str, runtime_layers: dict[str, Path], tmp_path: Path
) -> None:
    """The build's link check (`_check_links`) parses DT_NEEDED itself: numpy's core links OpenBLAS from
    numpy.libs, and a trim that removed OpenBLAS would fail the build rather than the first import on Lambda."""
    site = runtime_layers[arch] / "python"
    (core,) = (site / "numpy" / "_core").glob("_multiarray_umath.cpython-*.so")
    (openblas,) = (site / "numpy.libs").glob("libscipy_openblas*.so")
    needed = builder.elf_needed(core)
    assert openblas.name in needed
    assert "libc.so.6" in needed
    (pybind,) = (site / "onnxruntime" / "capi").glob("onnxruntime_pybind11_state*.so")
    assert not [n for n in builder.elf_needed(pybind) if n.startswith("libonnxruntime")]
    assert builder.elf_needed(site / "numpy" / "__init__.py") == []
    broken = tmp_path / "python" / "numpy" / "_core"
    broken.mkdir(parents=True)
    (broken / core.name).symlink_to(core)
    with pytest.raises(RuntimeError, match="which the trim removed"):
        builder._check_links(tmp_path / "python", [openblas.name])
    builder._check_links(site, [])


def test_runtime_layer_is_byte_compiled_with_unchecked_hash_pycs(runtime_layers: dict[str, Path]) -> None:
    info = builder.read_info(runtime_layers["x86_64"])
    if not info.byte_compiled:
        pytest.skip("no python3.12 on this machine: the layer was built without .pyc files")
    site = runtime_layers["x86_64"] / "python"
    pycs = list((site / "numpy").rglob("*.cpython-312.pyc"))
    assert pycs, "numpy is not byte-compiled for python3.12"
    flags = struct.unpack("<I", pycs[0].read_bytes()[4:8])[0]
    assert flags == 0b01, "pycs must be hash-based and unchecked (asset zips reset file times)"


CLASSIFY = """
import json, sys
from pathlib import Path
from pigeonhole.model.runtime import ModelRuntime
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.parser import BaseModel
import numpy, onnxruntime
assert numpy.__file__.startswith(sys.argv[2]), numpy.__file__
runtime = ModelRuntime.load(Path(sys.argv[1]))
probs = runtime.predict_proba(["I lost my card, please block it", "how do I top up by bank transfer?"])
top = probs.argmax(axis=1)
print(json.dumps({"labels": [runtime.classes[i] for i in top], "confidence": probs.max(axis=1).tolist(),
                  "python": sys.version.split()[0], "onnxruntime": onnxruntime.__version__}))
"""


@pytest.mark.parametrize("package", ["tiny"])  # the default package runs through the handlers below
def test_layer_loads_the_model_and_classifies_on_python312(
    package: str, runtime_layers: dict[str, Path], tmp_path: Path
) -> None:
    """A tiny real ONNX package built here (the default package: see the handlers' test below)."""
    python = builder.find_python("3.12")
    if python is None:
        pytest.skip("no python3.12 here to run the Lambda layer with")
    if package == "tiny":
        pytest.importorskip("skl2onnx", reason="the training extras are not installed")
        model_dir = write_tiny_onnx_model(tmp_path / "model")
    else:
        if not (REAL_MODEL_DIR / "manifest.json").is_file():
            pytest.skip("layers/model is not built yet (make model)")
        model_dir = REAL_MODEL_DIR
    site = runtime_layers["x86_64"] / "python"
    env = {
        "PYTHONPATH": f"{site}:{REPO_ROOT / 'functions'}",
        "ORT_DISABLE_TELEMETRY": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": "/usr/bin:/bin",
    }
    # -S -s: no site-packages of the interpreter, so every import comes from the layer (as on Lambda).
    result = subprocess.run(
        [python, "-S", "-s", "-c", CLASSIFY, str(model_dir), str(site)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    print(out)
    assert out["python"].startswith("3.12")
    assert len(out["labels"]) == 2
    assert all(0.0 < p <= 1.0 for p in out["confidence"])
    if package == "tiny":
        assert out["labels"] == ["lost_or_stolen_card", "top_up"]


def _pins(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) from a pip requirements file with `--hash` continuation lines."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--hash=sha256:"):
            pins[current][1].append(line.removeprefix("--hash=sha256:").rstrip(" \\"))
            continue
        requirement = line.rstrip(" \\").split(";")[0].strip()
        name, _, version = requirement.partition("==")
        current = name.split("[")[0].strip().lower().replace("_", "-")
        pins[current] = (version.strip(), [])
    return pins


def test_the_runtime_lock_pins_every_package_with_hashes() -> None:
    lock = _pins(builder.REQUIREMENTS.read_text(encoding="utf-8"))
    wanted = _pins(builder.REQUIREMENTS_IN.read_text(encoding="utf-8"))
    assert {"onnxruntime", "numpy", "aws-lambda-powertools", "pydantic-core", "aws-xray-sdk"} <= set(lock)
    for name, (version, hashes) in lock.items():
        assert version, f"{name} is not pinned with =="
        assert hashes, f"{name} has no --hash"
        assert all(len(h) == 64 for h in hashes), name
    for name, (version, _) in wanted.items():
        assert lock[name][0] == version, f"the lock pins {name} {lock[name][0]}, requirements.in asks {version}"


def test_the_built_layer_is_exactly_what_the_lock_pins(runtime_layers: dict[str, Path]) -> None:
    lock = _pins(builder.REQUIREMENTS.read_text(encoding="utf-8"))
    for arch in ("x86_64", "arm64"):
        installed = builder.read_info(runtime_layers[arch]).packages  # "name-version" of each dist-info
        assert installed
        for dist in installed:
            name, _, version = dist.rpartition("-")
            key = name.lower().replace("_", "-")
            assert key in lock, f"{dist} is in the {arch} layer but not in the lock"
            assert lock[key][0] == version, f"{dist} in the {arch} layer, {lock[key][0]} in the lock"


def test_the_asset_hash_is_derived_from_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_bytes(builder.REQUIREMENTS.read_bytes())
    same = builder.cache_key("x86_64", "3.12", byte_compiled=True, requirements=lock)
    assert same == builder.cache_key("x86_64", "3.12", byte_compiled=True)
    lock.write_bytes(builder.REQUIREMENTS.read_bytes().replace(b"--hash=sha256:", b"--hash=sha256:0", 1))
    assert builder.cache_key("x86_64", "3.12", byte_compiled=True, requirements=lock) != same


def test_a_wheel_that_does_not_match_its_hash_fails_the_build(tmp_path: Path) -> None:
    """pip runs with --require-hashes: a substituted or changed wheel stops the layer build."""
    tampered = tmp_path / "requirements.txt"
    tampered.write_text("six==1.17.0 --hash=sha256:" + "0" * 64 + "\n", encoding="utf-8")
    with pytest.raises(subprocess.CalledProcessError):
        builder._pip_install(tmp_path / "site", "x86_64", "3.12", tampered)
    assert not (tmp_path / "site" / "six.py").exists()


HANDLERS_ON_THE_LAYER = """
import json, os, sys, time, uuid
from datetime import UTC, datetime
import pigeonhole.classify.handler as classify
import pigeonhole.drift.handler as drift
import pigeonhole.feedback.handler as feedback
import pigeonhole.hook.handler  # the golden pre-traffic hook: imported only
import numpy, onnxruntime, aws_lambda_powertools, pydantic
layer, sdk = sys.argv[1], sys.argv[2]
for module in (numpy, onnxruntime, aws_lambda_powertools, pydantic):
    assert module.__file__.startswith(layer), module.__file__
import boto3
assert boto3.__file__.startswith(sdk), boto3.__file__

class Ctx:
    function_name, function_version, memory_limit_in_mb = "classifier", "1", 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:classifier:live"
    aws_request_id, log_group_name, log_stream_name = "r", "g", "s"
    @staticmethod
    def get_remaining_time_in_millis(): return 30_000

now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
texts = ["I lost my card, please block it", "how do I top up by bank transfer?", "my card payment was declined"]
records = [
    {"messageId": str(uuid.uuid4()), "receiptHandle": f"rh-{i}", "eventSource": "aws:sqs",
     "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest", "awsRegion": "us-east-1",
     "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
     "messageAttributes": {},
     "body": json.dumps({"id": f"evt-{i}", "time": now, "text": text})}
    for i, text in enumerate(texts)
]
devnull = os.open(os.devnull, os.O_WRONLY); saved = os.dup(1); os.dup2(devnull, 1)  # Powertools logs to stdout
response = classify.handler({"Records": records}, Ctx())
summary = drift.handler({}, Ctx())
sys.stdout.flush(); os.dup2(saved, 1)
print(json.dumps({"response": response, "drift": type(summary).__name__,
                  "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""
# Top-level modules the trim removed that no handler path may need (it would fail with ImportError on Lambda).
TRIMMED_TOP_LEVEL = {"google", "flatbuffers"}


def _sdk_standing_in_for_the_runtime(target: Path) -> Path:
    """boto3 and its dependencies, as Lambda's python3.12 runtime provides them beside /opt/python
    (pure Python: the test environment's copies serve), and nothing else of this interpreter's site."""
    import boto3

    site = Path(boto3.__file__).resolve().parents[1]
    target.mkdir()
    for name in ("boto3", "botocore", "s3transfer", "dateutil", "six.py", "urllib3"):
        (target / name).symlink_to(site / name)
    return target


def test_the_trimmed_layer_runs_the_handlers_against_aws_on_python312(
    runtime_layers: dict[str, Path], tmp_path: Path
) -> None:
    """The proof the trim is safe: python3.12 with only the layer, the function code and the runtime's SDK
    on sys.path imports every handler and runs a real batch through the real model, talking to AWS (moto in
    server mode over HTTP); then the drift function runs. Tracing is off, so the X-Ray SDK stays unloaded."""
    python = builder.find_python("3.12")
    if python is None:
        pytest.skip("no python3.12 here to run the Lambda layer with")
    if not (REAL_MODEL_DIR / "manifest.json").is_file():
        pytest.skip("layers/model is not built yet (make model)")
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    from pigeonhole_tools.local.emulator import Emulator, provision

    site = runtime_layers["x86_64"] / "python"
    sdk = _sdk_standing_in_for_the_runtime(tmp_path / "sdk")
    with Emulator() as emulator:
        resources = provision(emulator.endpoint, prefix="layertest")
        env = {
            **resources.lambda_environment(REAL_MODEL_DIR),
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "functions"), str(site), str(sdk)]),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PATH": "/usr/bin:/bin",
        }
        result = subprocess.run(  # -S -s: nothing from the interpreter's own site-packages
            [python, "-S", "-s", "-c", HANDLERS_ON_THE_LAYER, str(site), str(sdk)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        out = json.loads(result.stdout.strip().splitlines()[-1])
        delivered = _count_messages(emulator.endpoint, [resources.output_sink.url, resources.review.url])
        quarantined = _count_messages(emulator.endpoint, [resources.quarantine.url])
    assert out["response"] == {"batchItemFailures": []}
    assert out["drift"] == "dict"
    assert delivered == 3, "every event of the batch is published (output bus) or routed to review"
    assert quarantined == 0
    assert "aws_xray_sdk" not in out["modules"]
    assert not TRIMMED_TOP_LEVEL & set(out["modules"])


def _count_messages(endpoint: str, queue_urls: list[str]) -> int:
    import boto3

    from pigeonhole_tools.local.emulator import offline_environment

    env = offline_environment(endpoint=endpoint)
    sqs = boto3.client(
        "sqs",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
    )
    total = 0
    for url in queue_urls:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        total += int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    return total
