"""The send plan of each output: what sending on it needs, made once per output.

`OutputPlan` keeps an output's id as it travels and its data format's codec, and turns a
value into the Arrow array and `doradus._wire.values.ValuePlan` that the backend sends.
A sender that sends one preallocated Arrow array again and again (its contents rewritten
in place, as a camera driver fills one frame buffer) gets the plan made for its first send
back: an Arrow array's type, length and buffers never change, only the bytes in them, and
the backend reads those bytes when it sends.

Example:
    >>> import pyarrow as pa
    >>> out = OutputPlan(b"out", None)
    >>> value = pa.array([1, 2, 3])
    >>> array, plan, tag = out.prepare("out", value)
    >>> plan.size, tag, out.prepare("out", value)[1] is plan
    (24, 0, True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from doradus._exceptions import EncodeError
from doradus._wire.protocol import INLINE_MAX
from doradus._wire.values import plan_value, to_arrow

if TYPE_CHECKING:
    from doradus._wire.values import ValuePlan
    from doradus.codecs import Codec


class OutputPlan:
    """One output's send plan: its id as bytes, its codec, the plan of the value it last sent.

    Only an Arrow array of at most `INLINE_MAX` bytes is remembered (kept alive until the
    next send on the output): a large one may be a shared-memory buffer the node lets go of.
    Thread-safe: the array and its plan are remembered as one tuple, replaced whole, so a
    thread never pairs one array with another's plan (threads sending different arrays on
    one output only make their plans each time).

    Attributes:
        out: The output id, encoded.
        codec: The output's data format (None: Arrow).
    """

    __slots__ = ("_last", "codec", "out")

    def __init__(self, out: bytes, codec: Codec | None) -> None:
        self.out = out
        self.codec = codec
        self._last: tuple[Any, ValuePlan | None] = (None, None)

    def prepare(self, output_id: str, data: Any) -> tuple[pa.Array, ValuePlan, int]:
        """``data`` as the Arrow array that travels, its plan, and its format's tag.

        Raises:
            EncodeError: ``data`` cannot be sent (or encoded in the output's format).

        Example:
            >>> OutputPlan(b"o", None).prepare("o", b"hi")[1].size
            2
        """
        last, last_plan = self._last
        if data is last and last_plan is not None:
            return data, last_plan, 0
        if self.codec is not None:
            array = encoded_array(self.codec, output_id, data)
            return array, plan_value(array), self.codec.tag
        array = to_arrow(data)
        plan = plan_value(array)
        if array is data and plan.size <= INLINE_MAX:
            self._last = (array, plan)
        return array, plan, 0


def encoded_array(codec: Any, output_id: str, data: Any) -> pa.Array:
    """``data`` encoded by the output's codec, as a ``UInt8Array`` over the encoded bytes.

    Raises:
        EncodeError: the codec refused ``data`` (the message names the output).

    Example:
        >>> from types import SimpleNamespace
        >>> codec = SimpleNamespace(encode=lambda data: pa.py_buffer(data), spec="raw")
        >>> encoded_array(codec, "out", b"ab").to_pylist()
        [97, 98]
    """
    try:
        encoded = codec.encode(data)
    except EncodeError as exc:
        raise EncodeError(f"output {output_id!r} ({codec.spec}): {exc}") from exc
    if isinstance(encoded, pa.Buffer):
        return pa.Array.from_buffers(pa.uint8(), encoded.size, [None, encoded])
    return to_arrow(encoded)
