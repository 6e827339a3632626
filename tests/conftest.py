"""Test-wide safety net: nothing may reach AWS, whatever a test forgets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS = (REPO_ROOT / ".." / "shared" / "datasets").resolve()
MODEL_DIR = REPO_ROOT / "layers" / "model"

# Set before any boto3 client exists: fake credentials, a region, no instance metadata, and a
# proxy on a dead loopback port so an unmocked call fails fast instead of reaching the internet.
_SAFE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
    "ORT_DISABLE_TELEMETRY": "1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
}
for _key, _value in _SAFE_ENV.items():
    os.environ[_key] = _value
for _key in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(_key, None)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The committed default model package (layers/model)."""
    if not (MODEL_DIR / "manifest.json").is_file():
        pytest.fail(f"the default model package is missing from {MODEL_DIR}; rebuild it with `make model`")
    return MODEL_DIR


@pytest.fixture(scope="session")
def sms_spam_file() -> Path:
    """The SMS Spam Collection (tab-separated label, text): off-domain text for a banking model."""
    path = DATASETS / "sms_spam" / "SMSSpamCollection"
    if not path.is_file():
        pytest.skip(f"the SMS Spam Collection is not available at {path} (the shared datasets folder is absent)")
    return path


@pytest.fixture(scope="session")
def banking77_dir() -> Path:
    path = DATASETS / "banking77"
    if not (path / "train.csv").is_file():
        pytest.skip(f"BANKING77 is not available at {path} (the shared datasets folder is absent)")
    return path


# Property-based tests (Hypothesis): `ci` runs in `make test` (the property modules together try at
# least 10,000 cases; each test sets its share with `settings(max_examples=...)`, scaled here), `soak`
# multiplies them for `make soak`. Choose with PIGEONHOLE_HYPOTHESIS_PROFILE=soak.
def _hypothesis_profiles() -> None:
    from hypothesis import HealthCheck, settings

    common = {
        "deadline": None,  # no assertion on wall time; 2 shared cores make timings noisy
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
        "derandomize": False,
        "print_blob": True,
    }
    settings.register_profile("ci", **common)
    settings.register_profile("soak", **common)
    settings.load_profile(os.environ.get("PIGEONHOLE_HYPOTHESIS_PROFILE", "ci"))


_hypothesis_profiles()
