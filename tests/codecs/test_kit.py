"""The codec conformance kit fails codecs that break what they declare, and passes honest ones.

Each broken codec here is a real codec (or a toy) with one deliberate fault; `check_codec` or
`check_foreign` must raise AssertionError naming the codec, the guarantee and the input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from doradus._exceptions import DecodeError
from doradus.codecs import Buffer, Codec, Detects, FormatSpec, get_codec
from doradus.codecs._arrow import ArrowCodec
from doradus.testing import check_codec, check_foreign

SCHEMAS = Path(__file__).parent / "schemas"
NOTHING = Detects(0)


class Latin1(Codec):
    """Text as Latin-1: every byte string is some text, so it detects nothing (and says so)."""

    name, tag = "latin1", 7
    needs_schema = False
    detects = NOTHING

    def __init__(self, detects: Detects = NOTHING) -> None:
        super().__init__(FormatSpec("latin1"))
        self.detects = detects

    def encode(self, value: Any) -> Buffer:
        return str(value).encode("latin-1")

    def decode(self, data: Buffer) -> Any:
        return bytes(memoryview(data)).decode("latin-1")

    def to_python(self, value: Any) -> Any:
        return value


class Utf8(Latin1):
    """Text as UTF-8, decoded lazily by `to_python`, which must turn bad bytes into DecodeError."""

    name = "utf8"

    def encode(self, value: Any) -> Buffer:
        return str(value).encode()

    def decode(self, data: Buffer) -> Any:
        return bytes(memoryview(data))

    def to_python(self, value: Any) -> Any:
        try:
            return value.decode()
        except UnicodeDecodeError as exc:
            raise DecodeError(f"not UTF-8: {exc}") from exc


class Utf8Crashing(Utf8):
    """Fault: lets UnicodeDecodeError escape from `to_python`."""

    def to_python(self, value: Any) -> Any:
        return value.decode()


class ArrowUntilEndOfInput(ArrowCodec):
    """Fault: Arrow decoded as before the fix: the end of the input counts as the end of the stream."""

    def __init__(self, detects: Detects = ArrowCodec.detects) -> None:
        super().__init__()
        self.detects = detects

    def decode(self, data: Buffer) -> pa.Array:
        try:
            batches = list(pa.ipc.open_stream(pa.py_buffer(bytes(memoryview(data)))))
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DecodeError(f"not Arrow: {exc}") from exc
        if len(batches) != 1:
            raise DecodeError("not one batch")
        column: pa.Array = batches[0].column(0)
        return column


class ArrowRaisingValueError(ArrowCodec):
    """Fault: raises ValueError where it should raise DecodeError."""

    def __init__(self, detects: Detects = ArrowCodec.detects) -> None:
        super().__init__()
        self.detects = detects

    def decode(self, data: Buffer) -> pa.Array:
        try:
            return super().decode(data)
        except DecodeError as exc:
            raise ValueError(str(exc)) from exc


VALUES = [[1, 2], ["a", None]]


def test_a_codec_that_detects_nothing_passes_when_it_never_crashes() -> None:
    # undeclared kinds of bad input may decode: Latin-1 reads every byte string
    check_codec(Latin1(), ["abc", "", "ÿ" * 300])
    check_codec(Utf8(), ["abc", "", "日本" * 100])
    check_foreign(Latin1(), get_codec(FormatSpec("arrow")).encode([1]), writer="arrow")


def test_the_fixed_arrow_codec_passes() -> None:
    check_codec(ArrowCodec(), VALUES)


def test_a_decoder_taking_the_end_of_input_for_the_end_marker_fails_truncation() -> None:
    with pytest.raises(AssertionError, match=r"arrow: declares Detects\.TRUNCATION, but the \d+-byte prefix"):
        check_codec(ArrowUntilEndOfInput(), VALUES)


def test_a_decoder_ignoring_bytes_after_its_message_fails_trailing_bytes() -> None:
    codec = ArrowUntilEndOfInput(Detects.TRAILING_BYTES)  # truncation not declared: not asserted
    with pytest.raises(
        AssertionError, match=r"arrow: declares Detects\.TRAILING_BYTES, but a \d+-byte message"
    ):
        check_codec(codec, VALUES)


def test_a_decoder_zero_filling_missing_bytes_fails_truncation() -> None:
    pytest.importorskip("capnp")
    from doradus.codecs._capnp import CapnpCodec

    class ZeroFilling(CapnpCodec):
        """Fault: trusts the segment table and zero-fills the bytes the message lacks."""

        def decode(self, data: Buffer) -> Any:
            raw = bytes(memoryview(data))
            count = int.from_bytes(raw[:4], "little") + 1 if len(raw) >= 8 else 0
            if 0 < count <= 512 and len(raw) >= 4 + 4 * count:
                words = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "little") for i in range(count)]
                total = (4 + 4 * count + 7) // 8 * 8 + 8 * sum(words)
                raw += bytes(max(0, total - len(raw)))
            return super().decode(raw)

    spec = FormatSpec("capnp", SCHEMAS / "reading.capnp", "Reading")
    real, codec = CapnpCodec(spec), ZeroFilling(spec)
    value = {"label": "abc", "values": [1.0, 2.0], "blob": b"xyz"}
    check_codec(real, [value], expected=lambda v: real.to_python(real.decode(real.encode(v))))
    with pytest.raises(AssertionError, match=r"capnp: declares Detects\.TRUNCATION, but the \d+-byte prefix"):
        check_codec(codec, [value], expected=lambda v: real.to_python(real.decode(real.encode(v))))


@pytest.mark.parametrize("detects", [ArrowCodec.detects, NOTHING], ids=["declared", "nothing-declared"])
def test_value_error_instead_of_decode_error_fails(detects: Detects) -> None:
    # declaring nothing does not make "anything goes": only DecodeError may escape
    with pytest.raises(AssertionError, match=r"arrow: .* raised ValueError: .*may raise only DecodeError"):
        check_codec(ArrowRaisingValueError(detects), VALUES)


def test_another_exception_from_to_python_on_undeclared_garbage_fails() -> None:
    with pytest.raises(AssertionError, match=r"utf8: GARBAGE\[2\] .* raised UnicodeDecodeError"):
        check_codec(Utf8Crashing(), [])  # no values: only GARBAGE, whose [2] is b"\xff"


def test_declaring_garbage_while_decoding_it_fails() -> None:
    with pytest.raises(AssertionError, match=r"latin1: declares Detects\.GARBAGE, but GARBAGE\[0\]"):
        check_codec(Latin1(Detects.GARBAGE), ["abc"])


def test_declaring_other_formats_while_reading_their_bytes_fails() -> None:
    arrow_bytes = get_codec(FormatSpec("arrow")).encode([1, 2])
    with pytest.raises(
        AssertionError, match=r"latin1: declares Detects\.FOREIGN_FORMAT, but a message arrow"
    ):
        check_foreign(Latin1(Detects.FOREIGN_FORMAT), arrow_bytes, writer="arrow")


def test_a_real_codec_claiming_other_formats_it_reads_fails(tmp_path: Path) -> None:
    # An Avro `fixed` holds any bytes of its size verbatim: Avro cannot claim FOREIGN_FORMAT.
    arrow_bytes = bytes(memoryview(get_codec(FormatSpec("arrow")).encode([1, 2])))
    path = tmp_path / "frame.avsc"
    path.write_text(json.dumps({"type": "fixed", "name": "Frame", "size": len(arrow_bytes)}))
    codec = get_codec(FormatSpec("avro", path))
    check_foreign(codec, arrow_bytes, writer="arrow")  # as declared: read as a value
    codec.detects = codec.detects | Detects.FOREIGN_FORMAT
    with pytest.raises(AssertionError, match=r"avro: declares Detects\.FOREIGN_FORMAT, but a message arrow"):
        check_foreign(codec, arrow_bytes, writer="arrow")


def test_a_round_trip_that_changes_the_value_fails() -> None:
    class Upper(Latin1):
        def to_python(self, value: Any) -> Any:
            return value.upper()

    with pytest.raises(AssertionError, match=r"latin1: round trip of 'abc' gave 'ABC'"):
        check_codec(Upper(), ["abc"])


def test_strict_truncation_still_works_but_is_deprecated() -> None:
    with pytest.warns(DeprecationWarning, match="declare Detects.TRUNCATION"):
        check_codec(ArrowCodec(), VALUES, strict_truncation=True)
    # True requires truncation to be detected even where it is not declared ...
    with (
        pytest.warns(DeprecationWarning, match="strict_truncation"),
        pytest.raises(AssertionError, match=r"Detects\.TRUNCATION, but the \d+-byte prefix"),
    ):
        check_codec(ArrowUntilEndOfInput(NOTHING), VALUES, strict_truncation=True)
    # ... and False asks only for the weaker guarantee, whatever is declared
    with pytest.warns(DeprecationWarning, match="strict_truncation"):
        check_codec(ArrowUntilEndOfInput(Detects.TRUNCATION), VALUES, strict_truncation=False)
