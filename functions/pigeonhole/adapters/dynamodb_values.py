"""Python values to and from DynamoDB's wire form (floats become ``Decimal``: boto3 rejects float)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_TINY = Decimal("1e-120")  # DynamoDB numbers stop at 1E-130; a sum this small is 0 for monitoring

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _plain(value: Any) -> Any:
    """Python value → what TypeSerializer accepts (floats to Decimal, recursively)."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int | Decimal | bytes):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("DynamoDB cannot store NaN or infinity")
        d = Decimal(repr(value))
        return Decimal(0) if abs(d) < _TINY else d
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return _plain(value.item())
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def serialize(value: Any) -> dict[str, Any]:
    return dict(_serializer.serialize(_plain(value)))


def serialize_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: serialize(v) for k, v in item.items()}


def deserialize_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}
