"""Cold start in fresh Python 3.12 processes on the byte-compiled trees Lambda gets (see `footprint`).

Three programs, run interleaved (so machine load hits each alike), each at least 10 times:
- ``pigeonhole``: import the classifier handler (Lambda's init), build the service (verify and load the
  model, wire the clients; AWS answered in-process by `fakeaws`), first batch of 10 through the handler;
- ``floor``: ``import numpy, onnxruntime``, create the session from the same model file, first run;
- ``sklearn``: ``import numpy, scipy, sklearn, joblib``, ``joblib.load`` the pipeline, first
  ``predict_proba`` on the same 10 texts.
``python -X importtime`` of the handler import, aggregated by top-level package, shows where the
import goes (the lean work's cut shows there).

The handler's processes get the variables Lambda's Python runtime sets (`lambda_runtime_environment`):
outside Lambda, libraries take other paths at import (Powertools turns tracing off; the X-Ray SDK,
when imported, builds a centralized sampler with a botocore client), so a cold start measured without
them is not the one Lambda runs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pigeonhole_tools.bench.stats import summarize

_PIGEONHOLE = r"""
import json, os, sys, time
t0 = time.perf_counter(); c0 = time.process_time()
import pigeonhole.classify.handler as handler
t1 = time.perf_counter(); c1 = time.process_time()
sys.path.insert(0, sys.argv[3])
import fakeaws
from pigeonhole.config import Settings
session = fakeaws.make_session()
t1b = time.perf_counter(); c1b = time.process_time()
service = handler.build_service(Settings.from_env(), session=session)
handler.reset_for_tests(service)
t2 = time.perf_counter(); c2 = time.process_time()
event = json.load(open(sys.argv[2]))
class Ctx:
    function_name, function_version, memory_limit_in_mb = "classifier", "1", 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:classifier:live"
    aws_request_id, log_group_name, log_stream_name = "r", "g", "s"
    @staticmethod
    def get_remaining_time_in_millis(): return 30_000
devnull = os.open(os.devnull, os.O_WRONLY); saved = os.dup(1); os.dup2(devnull, 1)
t2b = time.perf_counter(); c2b = time.process_time()
response = handler.handler(event, Ctx())
t3 = time.perf_counter(); c3 = time.process_time()
sys.stdout.flush(); os.dup2(saved, 1)
assert response["batchItemFailures"] == [], response
json.dump({"import_ms": (t1 - t0) * 1e3, "load_ms": (t2 - t1b) * 1e3, "first_batch_ms": (t3 - t2b) * 1e3,
           "import_cpu_ms": (c1 - c0) * 1e3, "load_cpu_ms": (c2 - c1b) * 1e3, "first_batch_cpu_ms": (c3 - c2b) * 1e3},
          open(sys.argv[1], "w"))
"""

_FLOOR = r"""
import json, sys, time
t0 = time.perf_counter(); c0 = time.process_time()
import numpy, onnxruntime
t1 = time.perf_counter(); c1 = time.process_time()
options = onnxruntime.SessionOptions(); options.intra_op_num_threads = 1; options.inter_op_num_threads = 1
session = onnxruntime.InferenceSession(open(sys.argv[3], "rb").read(), sess_options=options,
                                       providers=["CPUExecutionProvider"])
t2 = time.perf_counter(); c2 = time.process_time()
texts = [" ".join(json.loads(r["body"])["text"].lower().split()) for r in json.load(open(sys.argv[2]))["Records"]]
session.run(None, {session.get_inputs()[0].name: numpy.array(texts, dtype=object).reshape(-1, 1)})
t3 = time.perf_counter(); c3 = time.process_time()
json.dump({"import_ms": (t1 - t0) * 1e3, "load_ms": (t2 - t1) * 1e3, "first_batch_ms": (t3 - t2) * 1e3,
           "import_cpu_ms": (c1 - c0) * 1e3, "load_cpu_ms": (c2 - c1) * 1e3, "first_batch_cpu_ms": (c3 - c2) * 1e3},
          open(sys.argv[1], "w"))
"""

_SKLEARN = r"""
import json, sys, time
t0 = time.perf_counter(); c0 = time.process_time()
import numpy, scipy, sklearn, joblib
import sklearn.pipeline, sklearn.feature_extraction.text, sklearn.neural_network
t1 = time.perf_counter(); c1 = time.process_time()
pipeline = joblib.load(sys.argv[3])
t2 = time.perf_counter(); c2 = time.process_time()
texts = [" ".join(json.loads(r["body"])["text"].lower().split()) for r in json.load(open(sys.argv[2]))["Records"]]
pipeline.predict_proba(texts)
t3 = time.perf_counter(); c3 = time.process_time()
json.dump({"import_ms": (t1 - t0) * 1e3, "load_ms": (t2 - t1) * 1e3, "first_batch_ms": (t3 - t2) * 1e3,
           "import_cpu_ms": (c1 - c0) * 1e3, "load_cpu_ms": (c2 - c1) * 1e3, "first_batch_cpu_ms": (c3 - c2) * 1e3},
          open(sys.argv[1], "w"))
"""


def lambda_runtime_environment(task_root: Path, *, function_name: str = "pigeonhole-classifier") -> dict[str, str]:
    """What Lambda's python3.12 runtime sets in an on-demand execution environment, beside the function's
    own variables: the task root, the runtime and function identity, and for active tracing the trace
    header of the invocation and the X-Ray daemon's address (loopback: a segment sent there goes nowhere)."""
    return {
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",  # the cold start a request waits for
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[1]00000000000000000000000000000000",
        "AWS_REGION": "us-east-1",
        "_HANDLER": "pigeonhole.classify.handler.handler",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "TZ": ":UTC",
    }


def _env(paths: Sequence[Path], extra: dict[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    return {
        **keep,
        **extra,
        "PYTHONPATH": os.pathsep.join(str(p) for p in paths),
        "PYTHONDONTWRITEBYTECODE": "1",  # /opt is read-only on Lambda: nothing is compiled at import
        "PYTHONNOUSERSITE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "ORT_DISABLE_TELEMETRY": "1",
    }


def _run(interpreter: str, script: str, args: Sequence[str], env: dict[str, str]) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    try:
        subprocess.run(  # noqa: S603 (our interpreter and our script)
            [interpreter, "-s", "-c", script, out, *args], check=True, env=env, capture_output=True, text=True
        )
        result: dict[str, float] = json.loads(Path(out).read_text(encoding="utf-8"))
    finally:
        os.unlink(out)
    result["total_ms"] = result["import_ms"] + result["load_ms"] + result["first_batch_ms"]
    result["total_cpu_ms"] = result["import_cpu_ms"] + result["load_cpu_ms"] + result["first_batch_cpu_ms"]
    return result


def run_cold(
    interpreter: str,
    *,
    function: Path,
    layer: Path,
    sdk: Path,
    sklearn_layer: Path | None,
    model_dir: Path,
    sklearn_model: Path | None,
    event_file: Path,
    handler_env: dict[str, str],
    runs: int,
) -> dict[str, Any]:
    """Interleaved fresh processes of the three programs; per program, summaries of each phase in ms."""
    fake_dir = str(Path(__file__).resolve().parent)
    programs: dict[str, tuple[str, list[str], dict[str, str]]] = {
        "pigeonhole": (
            _PIGEONHOLE,
            [str(event_file), fake_dir],
            _env([function, layer / "python", sdk], handler_env),
        ),
        "floor": (_FLOOR, [str(event_file), str(model_dir / "model.onnx")], _env([layer / "python"], {})),
    }
    if sklearn_layer is not None and sklearn_model is not None:
        programs["sklearn"] = (_SKLEARN, [str(event_file), str(sklearn_model)], _env([sklearn_layer / "python"], {}))
    samples: dict[str, list[dict[str, float]]] = defaultdict(list)
    for _ in range(runs):
        for name, (script, args, env) in programs.items():
            samples[name].append(_run(interpreter, script, args, env))
    return {name: {phase: summarize([r[phase] for r in rows]) for phase in rows[0]} for name, rows in samples.items()}


def import_breakdown(interpreter: str, paths: Sequence[Path], env: dict[str, str], runs: int = 3) -> dict[str, float]:
    """Median self time (ms) of the handler's import by top-level package, from ``python -X importtime``."""
    per_run: list[dict[str, float]] = []
    for _ in range(runs):
        out = subprocess.run(  # noqa: S603 (our interpreter)
            [interpreter, "-s", "-X", "importtime", "-c", "import pigeonhole.classify.handler"],
            check=True,
            env=_env(paths, env),
            capture_output=True,
            text=True,
        )
        totals: dict[str, float] = defaultdict(float)
        for line in out.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            _, self_us, _cumulative, name = _split(line)
            totals[name.strip().split(".")[0]] += float(self_us) / 1e3
        per_run.append(totals)
    names = set().union(*per_run)
    medians = {name: statistics.median(r.get(name, 0.0) for r in per_run) for name in names}
    return dict(sorted(medians.items(), key=lambda kv: -kv[1]))


def _split(line: str) -> tuple[str, str, str, str]:
    """``import time:   123 |   456 |   name`` → ("", "123", "456", "name")."""
    head, cumulative, name = line.split("|", 2)
    return "", head.removeprefix("import time:").strip(), cumulative.strip(), name
