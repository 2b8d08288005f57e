"""Message values made readable for ``doradus topic echo``: JSON-like, big ones cut with a summary.

An Arrow value is an array: `render_array` keeps its first ``max_items`` items as plain Python
(`jsonable`: nested lists and long strings or bytes cut too, times as ISO 8601, NaN and
infinities as strings) and says its type and length. Only those items are read: a 40 MiB
array costs what its first items cost. A value of another data format is what its codec's
``to_python`` gives, cut the same way (`render_python`). `text_of` writes one on one line.

Example:
    >>> import pyarrow as pa
    >>> shown = render_array(pa.array(range(100), pa.uint8()), max_items=4)
    >>> shown.value, shown.type, shown.length, shown.truncated
    ([0, 1, 2, 3], 'uint8', 100, True)
    >>> text_of(shown)
    '[0, 1, 2, 3, …] (uint8, 100 items)'
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

MAX_ITEMS = 10
"""Items of an array (and of each nested list) shown by default."""
MAX_TEXT = 200
"""Characters of a string, and bytes of a binary value, shown."""
ELLIPSIS = "…"


@dataclass(frozen=True)
class Shown:
    """A value as echo shows it.

    ``value`` is JSON-ready; ``type`` the Arrow type (or the format's type name), ``length``
    the number of items (None for a value that is not a sequence), ``truncated`` whether
    ``value`` holds fewer items than the message.

    Example:
        >>> Shown([1], "int64", 1, False).length
        1
    """

    value: Any
    type: str
    length: int | None
    truncated: bool


def render_array(array: pa.Array, max_items: int = MAX_ITEMS) -> Shown:
    """The first ``max_items`` items of ``array`` (a record batch's rows as objects), and its summary.

    Example:
        >>> import pyarrow as pa
        >>> render_array(pa.array([{"x": 1}, {"x": 2}])).value
        [{'x': 1}, {'x': 2}]
    """
    length = len(array)
    head = array.slice(0, max_items) if length > max_items else array
    items = [jsonable(item, max_items) for item in head.to_pylist()]
    return Shown(items, _type_name(array.type), length, length > max_items)


def render_python(value: Any, type_name: str, max_items: int = MAX_ITEMS) -> Shown:
    """A decoded value of another format (its codec's ``to_python``), cut like an array's items.

    Example:
        >>> render_python({"celsius": 21.5, "samples": list(range(20))}, "Reading", 3).value
        {'celsius': 21.5, 'samples': [0, 1, 2, '… 17 more']}
    """
    length = len(value) if isinstance(value, list) else None
    shown = jsonable(value, max_items)
    truncated = length is not None and length > max_items
    if truncated:
        shown = shown[:max_items]
    return Shown(shown, type_name, length, truncated)


def _type_name(type_: pa.DataType) -> str:
    import pyarrow as pa

    if pa.types.is_struct(type_):
        fields = ", ".join(f"{f.name}: {_type_name(f.type)}" for f in type_)
        return f"struct<{fields}>"
    return str(type_)


def jsonable(value: Any, max_items: int = MAX_ITEMS) -> Any:
    """``value`` as JSON-ready Python: long lists, strings and bytes cut, other types made text.

    Example:
        >>> jsonable([1.5, float("nan"), bytes([0, 1]), dt.date(2025, 1, 2), list(range(5))], 3)
        [1.5, 'NaN', {'$base64': 'AAE='}, '… 2 more']
    """
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str) and len(value) > MAX_TEXT:
            return value[:MAX_TEXT] + ELLIPSIS
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return value if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list | tuple):
        head = [jsonable(item, max_items) for item in value[:max_items]]
        return [*head, f"{ELLIPSIS} {len(value) - max_items} more"] if len(value) > max_items else head
    if isinstance(value, dict):
        return {str(k): jsonable(v, max_items) for k, v in value.items()}
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        cut = base64.b64encode(raw[:MAX_TEXT]).decode()
        return {"$base64": cut, "bytes": len(raw)} if len(raw) > MAX_TEXT else {"$base64": cut}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return str(value)


def text_of(shown: Shown) -> str:
    """One line: the value as compact JSON-like text, a summary after a cut one.

    Example:
        >>> text_of(Shown({"x": 1}, "Reading", None, False))
        '{"x": 1}'
    """
    text = json.dumps(shown.value, ensure_ascii=False)
    if not shown.truncated:
        return text
    if text.endswith("]"):
        text = text[:-1] + f", {ELLIPSIS}]"
    return f"{text} ({shown.type}, {shown.length} items)"
