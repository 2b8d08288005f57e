"""An output's send plan: the plan of a preallocated array is made once, and only then."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest

from doradus import EncodeError
from doradus._node.outputs import OutputPlan
from doradus._wire.protocol import INLINE_MAX


def test_the_same_array_sent_again_reuses_its_plan_and_sees_new_contents() -> None:
    buf = np.zeros(16, np.uint8)
    array = pa.array(buf)
    output = OutputPlan(b"out", None)

    first = output.prepare("out", array)
    buf[0] = 7  # rewritten in place, as a sender stamping a preallocated payload does
    again = output.prepare("out", array)

    assert again[1] is first[1]
    assert again[0] is array
    out = bytearray(again[1].size)
    again[1].write_into(memoryview(out), 0)
    assert out[0] == 7


def test_another_array_gets_its_own_plan() -> None:
    output = OutputPlan(b"out", None)
    one = output.prepare("out", pa.array([1, 2, 3]))[1]
    other = output.prepare("out", pa.array([1.5]))[1]

    assert other is not one
    assert (one.size, other.size) == (24, 8)


@pytest.mark.parametrize("data", [b"bytes", [1, 2], np.arange(4)], ids=["bytes", "list", "numpy"])
def test_values_that_are_not_arrow_arrays_are_planned_each_time(data: object) -> None:
    output = OutputPlan(b"out", None)

    assert output.prepare("out", data)[1] is not output.prepare("out", data)[1]


def test_an_array_larger_than_a_datagram_is_not_kept() -> None:
    big = pa.array(np.zeros(INLINE_MAX + 1, np.uint8))
    output = OutputPlan(b"out", None)

    assert output.prepare("out", big)[1] is not output.prepare("out", big)[1]


class _Upper:
    """A toy codec: the bytes, upper-cased."""

    tag = 3
    spec = "toy"

    def encode(self, data: bytes) -> bytes:
        if not isinstance(data, bytes):
            raise EncodeError("bytes only")
        return data.upper()


def test_a_codec_output_encodes_every_send() -> None:
    output = OutputPlan(b"out", _Upper())
    array = pa.array(np.frombuffer(b"ab", np.uint8))

    with pytest.raises(EncodeError, match="output 'out' \\(toy\\): bytes only"):
        output.prepare("out", array)
    value, plan, tag = output.prepare("out", b"ab")
    assert (value.to_pylist(), tag) == ([65, 66], 3)
    assert output.prepare("out", b"ab")[1] is not plan


def test_threads_sending_different_arrays_never_pair_one_with_anothers_plan() -> None:
    output = OutputPlan(b"out", None)
    arrays = [pa.array(np.full(n, n, np.uint8)) for n in range(1, 9)]
    wrong: list[int] = []

    def send(array: pa.Array) -> None:
        for _ in range(2000):
            got, plan, _tag = output.prepare("out", array)
            if got is not array or plan.size != len(array):
                wrong.append(len(array))

    threads = [threading.Thread(target=send, args=(a,)) for a in arrays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
