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


# Values below these bounds always serialize: a finite float under 1e100 becomes a Decimal of at most
# 17 significant digits well inside DynamoDB's range, an int under 10**37 fits its 38 digits.
_SAFE_FLOAT = 1e100
_SAFE_INT = 10**37


def check_item(item: Mapping[str, Any]) -> None:
    """Raise exactly what :func:`serialize_item` would raise for ``item``, without building its wire form.

    Why: the recorder checks every unit before the batch's writes (so one bad value skips its unit, not
    the batch), but most of what it checks is never written as DynamoDB values. The common values (str,
    bool, None, moderate finite floats and ints) are accepted at a glance; anything else goes through
    the full serializer, so the outcome is the serializer's.
    """
    for value in item.values():
        kind = type(value)
        if kind is str or kind is bool or value is None:
            continue
        if kind is float and -_SAFE_FLOAT < value < _SAFE_FLOAT:  # NaN fails both comparisons
            continue
        if kind is int and -_SAFE_INT < value < _SAFE_INT:
            continue
        serialize(value)


def deserialize_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


WRITE_UNIT_BYTES = 1024  # one write unit: a write of up to 1 KB (standard table; transactions cost two)


def item_size_bytes(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB bills it: attribute names plus values (strings and binary by length,
    a number ~1 byte per two significant digits plus one, booleans and nulls 1 byte, lists/maps their
    elements plus 3 bytes of overhead and 1 byte per element)."""
    return sum(len(name.encode("utf-8")) + _value_size(value) for name, value in item.items())


def write_units(item: Mapping[str, Any]) -> int:
    """Write units of one plain PutItem of ``item`` (rounded up per KB, at least one)."""
    return max(1, -(-item_size_bytes(item) // WRITE_UNIT_BYTES))


def _value_size(value: Any) -> int:
    value = _plain(value)
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, int | Decimal):
        digits = Decimal(value).normalize().as_tuple().digits
        return (len(digits) + 1) // 2 + 1
    if isinstance(value, Mapping):
        return 3 + sum(len(str(k).encode("utf-8")) + _value_size(v) + 1 for k, v in value.items())
    return 3 + sum(_value_size(v) + 1 for v in value)
