"""Where monitoring data lives in DynamoDB: the key layout shared by the classifier's recorder, the
feedback function, the drift function, the CDK stack and the local runtime.

Windows table (``pk`` S + ``sk`` S, TTL ``expires_at``):

=====================  ====================================  =============================================
pk                     sk                                    item
=====================  ====================================  =============================================
``W#<version>``        ``<window start>``                    counters of one window (``ADD`` only)
``W#<version>``        ``<window start>#<shard>``            one shard of it, when ``window_shards`` > 1
``W#<version>``        ``R#<window start>``                  the drift report of that window (written once)
``U#<version>``        ``<YYYY-MM-DD>``                      feedback that matched nothing, per UTC day
``M#models``           ``<version>``                         a model version the classifier served: its
                                                             classes and bin edges (TTL: capture TTL)
=====================  ====================================  =============================================

The ``M#models`` partition lets feedback join a label to a prediction of *any* model version whose
captures may still exist (a deploy does not orphan the previous version's predictions): the classifier
registers its version when a container first counts a batch (and daily), with the counter layout the
feedback function needs to add confusion counts to that version's windows.

Window starts are ISO-8601 UTC with a ``Z`` (``2026-11-29T07:00:00Z``): fixed width, so they sort by
time, and every window sort key (a digit first) sorts before every report key (``R#``).

Predictions table (``pk`` S, TTL ``expires_at``): ``P#<version>#<event id>`` is the dedup marker of a
classified event and, when the event is sampled, its prediction capture; ``Q#<version>#E#<event id>``
(or ``Q#<version>#M#<SQS message id>`` when the invalid body had no usable id) marks a quarantined
event. Feedback table (``pk`` S, TTL ``expires_at``): ``L#<version>#<event id>`` marks a joined label.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pigeonhole.constants import TABLE_PARTITION_KEY, TABLE_SORT_KEY, TABLE_TTL_ATTRIBUTE
from pigeonhole.drift.counters import CounterLayout
from pigeonhole.exceptions import ConfigurationError
from pigeonhole.model.features import FEATURE_LENGTH_CHARS, FEATURE_OOV_SHARE, FEATURE_TOKENS
from pigeonhole.model.manifest import Manifest

PK = TABLE_PARTITION_KEY
SK = TABLE_SORT_KEY
TTL = TABLE_TTL_ATTRIBUTE
REPORT_PREFIX = "R#"
SHARD_SEPARATOR = "#"
# Features the runtime can compute (pigeonhole.model.features.input_features).
SUPPORTED_FEATURES = frozenset({FEATURE_LENGTH_CHARS, FEATURE_TOKENS, FEATURE_OOV_SHARE})

# Attributes that describe a window item (never counters; counters.py keeps clear of these names).
ATTR_MODEL_VERSION = "model_version"
ATTR_WINDOW_START = "window_start"


def window_pk(version: str) -> str:
    return f"W#{version}"


def window_sk(start: str, shard: int = 0, shards: int = 1) -> str:
    """The sort key of a window (or of one of its shards: several items per window spread hot writes)."""
    return start if shards <= 1 else f"{start}{SHARD_SEPARATOR}{shard:03d}"


def window_start_of(sk: str) -> str:
    """The window start a window sort key (sharded or not) belongs to."""
    return sk.split(SHARD_SEPARATOR, 1)[0]


def report_sk(start: str) -> str:
    return f"{REPORT_PREFIX}{start}"


def unmatched_pk(version: str) -> str:
    return f"U#{version}"


MODELS_PK = "M#models"


def registry_item(manifest: Manifest, now: float, ttl_days: int) -> dict[str, Any]:
    """The ``M#models`` entry of a model version: what feedback needs to count labels in its windows."""
    body = {
        "classes": list(manifest.classes),
        "confidence_edges": list(manifest.drift_baseline.confidence.edges),
        "feature_edges": {k: list(v.edges) for k, v in sorted(manifest.drift_baseline.features.items())},
    }
    return {
        ATTR_MODEL_VERSION: manifest.version,
        "layout": json.dumps(body, separators=(",", ":")),
        "registered_at": iso(datetime.fromtimestamp(now, tz=UTC)),
        TTL: expires_at(now, ttl_days),
    }


@dataclass(frozen=True)
class RegisteredModel:
    """A model version read back from ``M#models``: its classes and counter layout."""

    version: str
    classes: tuple[str, ...]
    layout: CounterLayout

    @property
    def class_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> RegisteredModel:
        return cls(manifest.version, tuple(manifest.classes), counter_layout(manifest))

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> RegisteredModel:
        body = json.loads(str(item["layout"]))
        classes = tuple(str(c) for c in body["classes"])
        layout = CounterLayout(
            n_classes=len(classes),
            confidence_edges=tuple(float(e) for e in body["confidence_edges"]),
            feature_edges={str(k): tuple(float(e) for e in v) for k, v in body["feature_edges"].items()},
        )
        return cls(str(item[ATTR_MODEL_VERSION]), classes, layout)


def prediction_pk(version: str, event_id: str) -> str:
    return f"P#{version}#{event_id}"


def quarantine_pk(version: str, event_id: str | None, message_id: str) -> str:
    """Quarantined events dedup by event id when the body had one (an EventBridge duplicate is a new
    SQS message), else by SQS message id (which redelivery keeps)."""
    return f"Q#{version}#E#{event_id}" if event_id else f"Q#{version}#M#{message_id}"


def label_pk(version: str, event_id: str) -> str:
    return f"L#{version}#{event_id}"


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def window_of(epoch_seconds: float, window_seconds: int) -> str:
    start = int(epoch_seconds) - int(epoch_seconds) % window_seconds
    return iso(datetime.fromtimestamp(start, tz=UTC))


def expires_at(base: datetime | float, days: int) -> int:
    """TTL value (epoch seconds) ``days`` after ``base``."""
    when = base if isinstance(base, datetime) else datetime.fromtimestamp(base, tz=UTC)
    return int((when + timedelta(days=days)).timestamp())


def counter_layout(manifest: Manifest) -> CounterLayout:
    """What a window of this model package counts. Raises if the baseline monitors a feature the
    runtime cannot compute: a package that cannot be monitored is refused at cold start, not per batch."""
    unknown = set(manifest.drift_baseline.features) - SUPPORTED_FEATURES
    if unknown:
        raise ConfigurationError(
            f"model {manifest.name} {manifest.version}: drift baseline monitors features this runtime "
            f"cannot compute: {sorted(unknown)} (supported: {sorted(SUPPORTED_FEATURES)})"
        )
    return CounterLayout.from_baseline(manifest.drift_baseline, n_classes=len(manifest.classes))
