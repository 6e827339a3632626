"""Forward the metrics the local runtime sees to the emulator's CloudWatch (`PutMetricData`).

In AWS, CloudWatch Logs turns the functions' EMF lines into metrics and the drift function's EMF
goes the same way. Locally nothing ingests logs, so this module plays that part: it parses the
handler's EMF lines (the demo captures them in `.local/demo-handler.log`) and the drift run's
`MetricPoint`s, and puts them into moto with their namespace, name, dimensions, unit, values and
timestamp. The alarm evaluator (`alarms.py`) then reads them back like CloudWatch alarms would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from pigeonhole import metrics_catalog as mc
from pigeonhole.drift.service import MetricPoint
from pigeonhole_tools.local.emulator import DEFAULT_REGION, FAKE_CREDENTIAL, require_loopback

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef

# PutMetricData accepts up to 1,000 datums (and 1 MB) per call; stay well below.
PUT_CHUNK = 200
# CloudWatch keeps at most 150 distinct values per datum in `Values`.
MAX_VALUES = 150


@dataclass(frozen=True)
class Datum:
    """One metric datum as PutMetricData takes it: possibly several values (EMF arrays) at one time."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    unit: str
    values: tuple[float, ...]
    timestamp: datetime


def cloudwatch_client(endpoint: str, region: str = DEFAULT_REGION, max_attempts: int = 3) -> CloudWatchClient:
    """A CloudWatch client bound to the moto endpoint, with fake credentials (never AWS)."""
    session = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIAL,
        aws_secret_access_key=FAKE_CREDENTIAL,
        aws_session_token=FAKE_CREDENTIAL,
        region_name=region,
    )
    config = Config(retries={"max_attempts": max_attempts, "mode": "standard"}, connect_timeout=3, read_timeout=30)
    return session.client("cloudwatch", endpoint_url=require_loopback(endpoint), config=config)


# -- EMF -------------------------------------------------------------------------------------------
def _numbers(value: Any) -> tuple[float, ...]:
    if isinstance(value, bool):
        return ()
    if isinstance(value, int | float):
        return (float(value),)
    if isinstance(value, list):
        return tuple(float(v) for v in value if isinstance(v, int | float) and not isinstance(v, bool))
    return ()


def emf_datums(doc: Mapping[str, Any]) -> list[Datum]:
    """The datums one EMF document declares: one per metric per dimension set (what CloudWatch extracts)."""
    meta = doc.get("_aws")
    if not isinstance(meta, Mapping):
        return []
    stamp = meta.get("Timestamp")
    if not isinstance(stamp, int | float):
        return []
    when = datetime.fromtimestamp(stamp / 1000.0, tz=UTC)
    out: list[Datum] = []
    for directive in meta.get("CloudWatchMetrics") or []:
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str):
            continue
        dimension_sets = directive.get("Dimensions") or [[]]
        for metric in directive.get("Metrics") or []:
            name = metric.get("Name")
            values = _numbers(doc.get(name)) if isinstance(name, str) else ()
            if not values:
                continue
            unit = str(metric.get("Unit") or "None")
            for dim_names in dimension_sets:
                dims = tuple((str(d), str(doc[d])) for d in dim_names if d in doc)
                if len(dims) != len(dim_names):
                    continue  # a dimension without a value: CloudWatch drops the record too
                out.append(Datum(namespace, name, dims, unit, values, when))
    return out


def read_emf_lines(lines: Iterable[str]) -> list[Datum]:
    """Datums from a stream of log lines; non-JSON lines and plain logs are skipped."""
    out: list[Datum] = []
    for line in lines:
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            out.extend(emf_datums(doc))
    return out


def read_emf_log(path: Path) -> list[Datum]:
    """Datums of a handler log file (missing file: none)."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as fh:
        return read_emf_lines(fh)


def point_datums(points: Sequence[MetricPoint], timestamp: datetime, namespace: str = mc.NAMESPACE) -> list[Datum]:
    """The drift run's points as datums, stamped with the run's time (what its EMF would carry).

    Dimensions keep the emitter's order (the catalog's): moto 5.2.5 compares dimension lists with a
    broken `Dimension.__lt__`, so a query matches only datums whose dimensions were put in its order.
    """
    return [Datum(namespace, p.name, tuple(p.dimensions.items()), p.unit, (float(p.value),), timestamp) for p in points]


# -- PutMetricData ----------------------------------------------------------------------------------
def _api_datums(datum: Datum) -> Iterator[MetricDatumTypeDef]:
    values = datum.values
    for i in range(0, len(values), MAX_VALUES):
        part = values[i : i + MAX_VALUES]
        entry: MetricDatumTypeDef = {
            "MetricName": datum.name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in datum.dimensions],
            "Timestamp": datum.timestamp,
            "Unit": datum.unit,  # type: ignore[typeddict-item]
        }
        if len(part) == 1:
            entry["Value"] = part[0]
        else:
            entry["Values"] = list(part)
            entry["Counts"] = [1.0] * len(part)
        yield entry


class DatumLedger:
    """Every datum a forwarder put, kept in memory (thread-safe).

    Why: moto 5.2.5's GetMetricData and GetMetricStatistics compute Sum, Average, Minimum, Maximum and
    SampleCount only; a percentile (`p99`) comes back empty. The alarm evaluator reads percentiles from
    here instead: the same values moto holds, with the same namespace, name, dimensions and timestamps.
    """

    def __init__(self) -> None:
        self._datums: list[Datum] = []
        self._lock = threading.Lock()

    def add(self, datums: Iterable[Datum]) -> None:
        with self._lock:
            self._datums.extend(datums)

    def values(
        self, namespace: str, name: str, dimensions: Mapping[str, str], start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        """(timestamp, value) of every value put in ``[start, end)`` with exactly these dimensions."""
        wanted = dict(dimensions)
        with self._lock:
            matching = [
                d
                for d in self._datums
                if d.namespace == namespace
                and d.name == name
                and dict(d.dimensions) == wanted
                and len(d.dimensions) == len(wanted)
                and start <= d.timestamp < end
            ]
        return [(d.timestamp, v) for d in matching for v in d.values]


class MetricForwarder:
    """Puts datums into the emulator's CloudWatch, grouped by namespace, in chunks; counts what it sent.

    With a `ledger`, every datum put is also kept there (percentiles, see `DatumLedger`)."""

    def __init__(self, client: CloudWatchClient, ledger: DatumLedger | None = None) -> None:
        self._client = client
        self.ledger = ledger
        self.sent = 0
        self._lock = threading.Lock()

    def put(self, datums: Sequence[Datum]) -> int:
        by_namespace: dict[str, list[MetricDatumTypeDef]] = {}
        for d in datums:
            by_namespace.setdefault(d.namespace, []).extend(_api_datums(d))
        count = 0
        for namespace, entries in by_namespace.items():
            for i in range(0, len(entries), PUT_CHUNK):
                chunk = entries[i : i + PUT_CHUNK]
                self._client.put_metric_data(Namespace=namespace, MetricData=chunk)
                count += len(chunk)
        if self.ledger is not None:
            self.ledger.add(datums)
        with self._lock:
            self.sent += count
        return count

    def put_points(self, points: Sequence[MetricPoint], timestamp: datetime) -> int:
        return self.put(point_datums(points, timestamp))

    def put_log(self, path: Path) -> int:
        return self.put(read_emf_log(path))
