"""Hostile input: the dataflow loader, the wire header, the frame decoder, every codec and metadata.

Whatever the input, the only allowed outcomes are success or a `DoradusError` subclass with a
non-empty message: no other exception, no hang (each example runs under a timer that raises
if it does not return). `make test` runs a hundred examples per target; `make fuzz` sets
`DORADUS_FUZZ=1` and runs `DORADUS_FUZZ_EXAMPLES` (default 5000) per target.
"""

from __future__ import annotations

import os
import signal
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from doradus import DoradusError
from doradus._dataflow.loader import load_dataflow_text
from doradus._node.receive import decode_input
from doradus._wire.metadata import decode_metadata
from doradus._wire.protocol import DATA, KIND_DATA, unpack_data
from doradus.backends._frames import decode_frame
from doradus.codecs import FormatSpec, get_codec

FUZZ = bool(os.environ.get("DORADUS_FUZZ"))
EXAMPLES = int(os.environ.get("DORADUS_FUZZ_EXAMPLES", "5000")) if FUZZ else 100
HOSTILE = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A decoder that takes longer than this on one example of a few KiB is looping.
EXAMPLE_TIMEOUT = 10.0

SCHEMAS = Path(__file__).parent.parent / "codecs" / "schemas"
SPECS = {
    "arrow": FormatSpec("arrow"),
    "capnp": FormatSpec("capnp", SCHEMAS / "reading.capnp", "Reading"),
    "flatbuffers": FormatSpec("flatbuffers", SCHEMAS / "reading.fbs", "Reading"),
    "avro": FormatSpec("avro", SCHEMAS / "reading.avsc"),
}


class _Hang(Exception):
    """Raised by the timer when one example runs longer than `EXAMPLE_TIMEOUT`."""


@contextmanager
def _guard() -> Iterator[None]:
    """Raise `_Hang` in a decoder that spins: a CPU-time timer, so pytest-timeout's SIGALRM stays its own."""

    def _alarm(_signum: int, _frame: object) -> None:
        raise _Hang(f"no result after {EXAMPLE_TIMEOUT} s of CPU: the decoder loops on this input")

    previous = signal.signal(signal.SIGVTALRM, _alarm)
    signal.setitimer(signal.ITIMER_VIRTUAL, EXAMPLE_TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


def _only_doradus_errors(call: Callable[[], Any]) -> Any:
    """Run ``call``; a `DoradusError` with a message is fine, anything else fails the test."""
    with _guard():
        try:
            return call()
        except DoradusError as exc:
            error = exc
    assert str(error).strip(), f"{type(error).__name__} without a message"
    return None


# --- (1) the dataflow loader -------------------------------------------------------------

KEYS = [
    "nodes", "id", "path", "inputs", "outputs", "args", "env", "source", "queue_size",
    "communication", "_unstable_deploy", "machine", "operators", "operator", "custom",
    "build", "restart_policy", "max_restarts", "input_timeout", "format", "schema", "type",
    "python", "shared-library", "local", "remote", "zenoh", "backend", "dynamic", "timer",
    "dora/timer/millis/10", "a/out", "send_stdout_as", "description", "name", "git",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(KEYS),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=10), st.integers(-5, 5), st.booleans())
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=30,
)
# Dataflow-shaped: a `nodes` list of maps of real keys, so the checks past the top level run.
node_maps = st.dictionaries(st.sampled_from(KEYS), documents, max_size=6)
flows = st.fixed_dictionaries(
    {
        "nodes": st.lists(
            st.one_of(
                node_maps,
                st.fixed_dictionaries(
                    {"id": scalars, "path": scalars}, optional={"inputs": documents, "outputs": documents}
                ),
            ),
            max_size=3,
        )
    },
    optional={"communication": documents, "_unstable_deploy": documents},
)
yamlish_pieces = st.sampled_from(
    [*KEYS, ":", ": ", "- ", "\n", "  ", "\t", "{", "}", "[", "]", ",", "&a ", "*a", "!!str ", "!!binary ",
     "<<: *a", "'", '"', "#", "|", ">", "---", "...", "$HOME", "${X:-y}", "%YAML 1.2", "? ", "~", "\x00"]
)  # fmt: skip
yamlish = st.lists(st.one_of(yamlish_pieces, st.text(max_size=5)), max_size=40).map("".join)


@HOSTILE
@given(document=st.one_of(documents, flows))
@example(document={"nodes": [{"id": "a", "path": "dynamic", "inputs": {"x": {"source": None}}}]})
def test_loader_structured(document: object) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    _only_doradus_errors(lambda: load_dataflow_text(text, "/srv/fuzz/flow.yml"))


@HOSTILE
@given(text=yamlish)
@example(text="a: &a [*a]")
@example(text="nodes:\n- &a {id: x, path: dynamic, inputs: *a}")
def test_loader_text(text: str) -> None:
    _only_doradus_errors(lambda: load_dataflow_text(text, "/srv/fuzz/flow.yml"))


# --- (2) the wire header and the frame decoder --------------------------------------------

frames = st.one_of(
    st.binary(max_size=2 * DATA.size + 64),
    # A real data kind with random lengths, so the length checks are reached.
    st.tuples(
        st.integers(0, 255), st.binary(min_size=DATA.size - 1, max_size=DATA.size - 1), st.binary(max_size=64)
    ).map(lambda t: bytes([KIND_DATA]) + t[1] + t[2]),
)


def _frame(parts: tuple[int, int, bytes, bytes, bytes, bytes, bytes]) -> bytes:
    """A data frame whose lengths add up, its parts random: what passes the length checks."""
    kind, flags, output, type_blob, layout, meta, body = parts
    head = DATA.pack(kind, flags, len(output), len(type_blob), len(layout), len(meta), 0, 0, 0, len(body), 0)
    frame = head + output + type_blob + layout + meta
    return frame + bytes(-len(frame) % 8) + body


consistent = st.tuples(
    st.sampled_from([KIND_DATA, 0, 2, 255]),
    st.integers(0, 255),
    st.one_of(st.just(b"out"), st.binary(max_size=8)),
    st.binary(max_size=64),
    st.binary(max_size=64),
    st.binary(max_size=32),
    st.binary(max_size=64),
).map(_frame)
frames = st.one_of(frames, consistent)
BAD_OUTPUT = _frame((KIND_DATA, 0, b"\xff\xfe", b"", b"", b"", b""))


@HOSTILE
@given(frame=frames)
@example(frame=bytes([KIND_DATA]) + bytes(DATA.size - 1))
def test_header_reader(frame: bytes) -> None:
    """`unpack_data` reads any datagram at least `DATA.size` long; shorter ones are `struct.error`."""
    with _guard():
        if len(frame) < DATA.size:
            with pytest.raises(struct.error):
                unpack_data(frame)
        else:
            assert len(unpack_data(frame)) == 11


@HOSTILE
@given(frame=frames)
@example(frame=bytes([KIND_DATA]) + bytes(DATA.size - 1))
@example(frame=BAD_OUTPUT)  # was UnicodeDecodeError: the output id is now checked
def test_frame_decoder(frame: bytes) -> None:
    """`decode_frame`, then the node's `decode_input` on what it accepted."""

    def decode() -> None:
        _output, entry = decode_frame(frame)
        decode_input("in", entry)

    _only_doradus_errors(decode)


# --- (3) every codec's decoder and (4) metadata -------------------------------------------


@pytest.mark.parametrize("name", list(SPECS))
@HOSTILE
@given(data=st.binary(max_size=512))
@example(data=b"")
@example(data=b"\xff" * 64)
def test_codec_decoder(name: str, data: bytes) -> None:
    codec = get_codec(SPECS[name])
    _only_doradus_errors(lambda: codec.decode(data))


@HOSTILE
@given(data=st.binary(max_size=512))
@example(data=b"\xff\xff\xff\xff")
def test_metadata_decoder(data: bytes) -> None:
    _only_doradus_errors(lambda: decode_metadata(data))
