"""The format mapping without a run: Arrow values as IPC streams, metadata as JSON, and back."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from doradus._recording.arrow_ipc import ipc_stream, read_value, to_batch
from doradus._recording.errors import RecordingError
from doradus._recording.metadata_json import from_json, to_json
from doradus._recording.reader import Recording
from doradus._recording.writer import RecordingWriter

VALUES = [
    pa.array([1, 2, 3]),
    pa.array([], pa.float32()),
    pa.array(["a", None, "c"]),
    pa.array([[1, 2], [], None], pa.list_(pa.int16())),
    pa.StructArray.from_arrays([pa.array([1.5, 2.5]), pa.array(["x", "y"])], names=["v", "s"]),
    # a struct with a null at its top cannot be a batch: it stays one column
    pa.StructArray.from_arrays([pa.array([1])], names=["v"], mask=pa.array([True])),
    pa.array([1, 2, 3, 4]).slice(1, 2),
    pa.array(["a", "b", "a"]).dictionary_encode(),
    pa.nulls(0),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: str(v.type))
def test_every_value_comes_back_as_sent(value: pa.Array) -> None:
    data = ipc_stream(to_batch(value))
    back = read_value(data)
    assert back.type == value.type
    assert back.to_pylist() == value.to_pylist()
    # and the stream alone is readable by plain pyarrow
    assert pa.ipc.open_stream(data).read_all().num_rows == len(value)


def test_a_damaged_message_is_a_recording_error() -> None:
    with pytest.raises(RecordingError, match="not an Arrow IPC stream"):
        read_value(b"\x00" * 16)


def test_metadata_keeps_every_dora_type() -> None:
    metadata = {
        "flag": True,
        "count": 3,
        "ratio": 1.0,
        "name": "cam",
        "ints": [1, 2],
        "floats": [1.0, 2.5],
        "names": ["a"],
        "at": datetime(2025, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
    }
    back = from_json(to_json(4, metadata))
    assert back == metadata
    assert [type(v) for v in back.values()] == [type(v) for v in metadata.values()]


def test_a_writer_cut_mid_file_is_read_up_to_its_last_chunk(tmp_path: Path) -> None:
    path = tmp_path / "cut.mcap"
    writer = RecordingWriter(path, chunk_size=4096, flush_interval=3600)
    for n in range(200):
        writer.add_arrow("a", "o", pa.array([n] * 64), {"n": n}, time.time_ns(), time.time_ns())
    written = path.stat().st_size  # the chunks written so far (the one in progress is not)
    writer.finish({})
    cut = tmp_path / "cut-copy.mcap"
    cut.write_bytes(path.read_bytes()[: written - 7])  # into the last chunk written

    with Recording.open(cut) as recording:
        assert not recording.complete
        values = [m.arrow()[0].as_py() for m in recording.messages()]
        metadata = [m.metadata["n"] for m in recording.messages()]
    assert 0 < len(values) < 200
    assert values == list(range(len(values))) == metadata
    with Recording.open(path) as whole:
        assert whole.complete
        assert whole.dropped() == {}
        assert len(list(whole.messages({"a/o"}))) == 200
