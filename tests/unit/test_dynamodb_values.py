"""`check_item` (the recorder's per-unit check) raises exactly when `serialize_item` would, and the same error.

Why: the recorder skips a unit whose values DynamoDB cannot store instead of failing its whole batch; it
now checks without building the wire form, so the check must agree with the serializer on every value.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeonhole.adapters.dynamodb_values import check_item, serialize_item

EDGES: list[Any] = [
    float("nan"),
    float("inf"),
    -float("inf"),
    1e99,
    -1e99,
    1e100,
    1e126,
    1e127,  # past DynamoDB's exponent range: the serializer raises
    -1e300,
    1e-121,  # below 1e-120: stored as 0
    1e-125,
    5e-324,
    0.0,
    -0.0,
    10**36,
    10**37,
    10**38,  # 39 digits: DynamoDB keeps 38
    -(10**40),
    True,
    False,
    None,
    "",
    "text",
    b"\x00",
    Decimal("NaN"),
    Decimal("1E+200"),
    Decimal("0.1"),
    np.float64("nan"),
    np.float64(0.5),
    np.int64(3),
    [1.0, float("nan")],
    {"a": float("inf")},
    {1, 2},
    object(),
]


def _outcome(fn: Any, item: dict[str, Any]) -> type[BaseException] | None:
    try:
        fn(item)
    except Exception as exc:
        return type(exc)
    return None


@pytest.mark.parametrize("value", EDGES, ids=repr)
def test_check_item_agrees_with_the_serializer_on_edge_values(value: Any) -> None:
    item = {"pk": "P#v1#e", "value": value}
    assert _outcome(check_item, item) is _outcome(serialize_item, item)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(min_value=-(10**45), max_value=10**45),
            st.text(max_size=20),
            st.booleans(),
            st.none(),
            st.lists(st.floats(), max_size=3),
        ),
        max_size=6,
    )
)
def test_check_item_raises_exactly_when_serialize_item_does(item: dict[str, Any]) -> None:
    assert _outcome(check_item, item) is _outcome(serialize_item, item)
