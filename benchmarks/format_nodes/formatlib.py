"""The three benchmark records in each of the four formats: build, encode, decode, touch one field.

Shared by `benchmarks/formats.py` (the in-process measurements) and the two node scripts of
the end-to-end dataflows, so both measure exactly the same code. Every format is written the
way its library is fastest and idiomatic:

- arrow: a one-row StructArray; the float values a `list<float32>` and the image a `binary`
  column, both built over the numpy memory without a copy.
- capnp: a builder from `new_message(...)`; the float values a typed `List(Float32)` (built
  from a Python list: pycapnp has no bulk numpy path for typed lists), the pixels a `Data`
  field (filled from a memoryview, read with `numpy.frombuffer`).
- flatbuffers: the flatc-generated builder functions, `CreateNumpyVector` for the vectors,
  `...AsNumpy()` to read them.
- avro: a dict (the float values as a list, the pixels as bytes: what fastavro writes
  fastest), the schema parsed once by the codec.

"encode" is building the format's object from the application's data (ints, a str, a numpy
array) plus the codec's `encode`; "decode" is the codec's `decode` (what a receiver's
`event.value` is); "touch" reads one field through that reader: the control message's
`seq`, the sensor's first float, the image's first pixel byte.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

SCHEMAS = Path(__file__).resolve().parent.parent / "format_schemas"
FORMATS = ("arrow", "capnp", "flatbuffers", "avro")
RECORDS = ("control", "sensor", "image")
TYPES = {"control": "Control", "sensor": "Sensor", "image": "Image"}
SUFFIX = {"capnp": ".capnp", "flatbuffers": ".fbs", "avro": ".avsc"}
TOUCHED = {"control": "seq", "sensor": "values[0]", "image": "data[0]"}

SENSOR_VALUES = 1000
IMAGE_WIDTH, IMAGE_HEIGHT = 1024, 1024  # mono8: 1 MiB


def describe(record: str) -> str:
    return {
        "control": "control: seq, velocity x/y/z (float64), mode (str), armed (bool)",
        "sensor": f"sensor: {SENSOR_VALUES:,} float32, int64 timestamp, label (str)",
        "image": f"image: {IMAGE_WIDTH}x{IMAGE_HEIGHT} mono8 (1 MiB of bytes), width, height, encoding, "
        "timestamp",
    }[record]


def app_data(record: str) -> dict[str, Any]:
    """The application's data for one record, as a program would hold it before sending."""
    if record == "control":
        return {"seq": 1, "vx": 0.5, "vy": -0.25, "vz": 1.125, "mode": "track", "armed": True}
    if record == "sensor":
        values = np.linspace(-1.0, 1.0, SENSOR_VALUES, dtype=np.float32)
        return {"stamp": 1_700_000_000_000_000_000, "label": "lidar/front", "values": values}
    if record == "image":
        pixels = np.arange(IMAGE_WIDTH * IMAGE_HEIGHT, dtype=np.uint32).astype(np.uint8)
        return {
            "stamp": 1_700_000_000_000_000_000,
            "width": IMAGE_WIDTH,
            "height": IMAGE_HEIGHT,
            "encoding": "mono8",
            "data": pixels,
        }
    raise KeyError(record)


def schema_ref(fmt: str, record: str) -> str | None:
    """The `schema:` value of the dataflow (`file[:Type]`), None for Arrow."""
    if fmt == "arrow":
        return None
    path = SCHEMAS / f"{record}{SUFFIX[fmt]}"
    return f"{path}:{TYPES[record]}" if fmt in ("capnp", "flatbuffers") else str(path)


# ------------------------------------------------------------------------------ flatbuffers
_FBS_MODULES: dict[str, Any] = {}


def flatbuffers_module(record: str) -> Any:
    """The flatc-generated module of the record's table: the code the codec generated and imports.

    The codec runs flatc and puts its output folder on `sys.path`; each schema has its own
    namespace (``fmtbench_<record>``), the package the generated modules are imported under.
    """
    module = _FBS_MODULES.get(record)
    if module is None:
        import importlib

        codec_for("flatbuffers", record)
        module = _FBS_MODULES[record] = importlib.import_module(f"fmtbench_{record}.{TYPES[record]}")
    return module


def _fbs_build(record: str, app: dict[str, Any], seq: int) -> Any:
    import flatbuffers

    m = flatbuffers_module(record)
    if record == "control":
        b = flatbuffers.Builder(128)
        mode = b.CreateString(app["mode"])
        m.Start(b)
        m.AddSeq(b, seq)
        m.AddVx(b, app["vx"])
        m.AddVy(b, app["vy"])
        m.AddVz(b, app["vz"])
        m.AddMode(b, mode)
        m.AddArmed(b, app["armed"])
    elif record == "sensor":
        b = flatbuffers.Builder(4 * SENSOR_VALUES + 128)
        values = b.CreateNumpyVector(app["values"])
        label = b.CreateString(app["label"])
        m.Start(b)
        m.AddStamp(b, app["stamp"])
        m.AddLabel(b, label)
        m.AddValues(b, values)
    else:
        b = flatbuffers.Builder(app["data"].nbytes + 128)
        data = b.CreateNumpyVector(app["data"])
        encoding = b.CreateString(app["encoding"])
        m.Start(b)
        m.AddStamp(b, app["stamp"])
        m.AddWidth(b, app["width"])
        m.AddHeight(b, app["height"])
        m.AddEncoding(b, encoding)
        m.AddData(b, data)
    b.Finish(m.End(b))
    return b  # a finished Builder: the codec takes its output as it is (and verifies it)


def _fbs_touch(record: str, r: Any) -> Any:
    if record == "control":
        return r.Seq()
    if record == "sensor":
        return r.ValuesAsNumpy()[0]
    return r.DataAsNumpy()[0]


# ------------------------------------------------------------------------------ capnp
_CAPNP: dict[str, Any] = {}


def capnp_struct(record: str) -> Any:
    struct = _CAPNP.get(record)
    if struct is None:
        import capnp

        path = SCHEMAS / f"{record}.capnp"
        module = capnp.load(str(path), imports=[str(SCHEMAS)])
        struct = _CAPNP[record] = getattr(module, TYPES[record])
    return struct


def _capnp_build(record: str, app: dict[str, Any], seq: int) -> Any:
    s = capnp_struct(record)
    if record == "control":
        return s.new_message(
            seq=seq, vx=app["vx"], vy=app["vy"], vz=app["vz"], mode=app["mode"], armed=app["armed"]
        )
    if record == "sensor":
        # Every format carries the same typed float array (Arrow list<float32>, FlatBuffers
        # [float], Avro array<float>): here List(Float32), filled element by element by pycapnp.
        return s.new_message(stamp=app["stamp"], label=app["label"], values=app["values"].tolist())
    return s.new_message(
        stamp=app["stamp"],
        width=app["width"],
        height=app["height"],
        encoding=app["encoding"],
        data=memoryview(app["data"]),
    )


def _capnp_touch(record: str, r: Any) -> Any:
    if record == "control":
        return r.seq
    if record == "sensor":
        return r.values[0]
    return np.frombuffer(r.data, dtype=np.uint8)[0]


# ------------------------------------------------------------------------------ arrow
def _arrow_build(record: str, app: dict[str, Any], seq: int) -> pa.StructArray:
    if record == "control":
        return pa.StructArray.from_arrays(
            [
                pa.array([seq], pa.int64()),
                pa.array([app["vx"]], pa.float64()),
                pa.array([app["vy"]], pa.float64()),
                pa.array([app["vz"]], pa.float64()),
                pa.array([app["mode"]], pa.string()),
                pa.array([app["armed"]], pa.bool_()),
            ],
            names=["seq", "vx", "vy", "vz", "mode", "armed"],
        )
    if record == "sensor":
        values = app["values"]
        offsets = pa.array([0, len(values)], pa.int32())
        column = pa.ListArray.from_arrays(offsets, pa.array(values))  # no copy of the floats
        return pa.StructArray.from_arrays(
            [pa.array([app["stamp"]], pa.int64()), pa.array([app["label"]], pa.string()), column],
            names=["stamp", "label", "values"],
        )
    data = app["data"]
    offsets = pa.array([0, data.nbytes], pa.int32()).buffers()[1]
    column = pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(data)])  # no copy
    return pa.StructArray.from_arrays(
        [
            pa.array([app["stamp"]], pa.int64()),
            pa.array([app["width"]], pa.uint32()),
            pa.array([app["height"]], pa.uint32()),
            pa.array([app["encoding"]], pa.string()),
            column,
        ],
        names=["stamp", "width", "height", "encoding", "data"],
    )


def _arrow_touch(record: str, r: pa.StructArray) -> Any:
    if record == "control":
        return r.field("seq")[0].as_py()
    if record == "sensor":
        return r.field("values").flatten().to_numpy()[0]
    # The pixels in place: `column[0].as_buffer()` makes a Scalar that copies the 1 MiB value
    # (about 35 µs here); the column's offsets and data buffers give a view instead.
    column = r.field("data")
    _, offsets, data = column.buffers()
    start = int(np.frombuffer(offsets, dtype=np.int32, count=1, offset=4 * column.offset)[0])
    return np.frombuffer(data, dtype=np.uint8, count=1, offset=start)[0]


# ------------------------------------------------------------------------------ avro
def _avro_build(record: str, app: dict[str, Any], seq: int) -> dict[str, Any]:
    if record == "control":
        return {**app, "seq": seq}
    if record == "sensor":
        # fastavro writes a list item by item; a list is faster to walk than a numpy array.
        return {**app, "values": app["values"].tolist()}
    return {**app, "data": app["data"].tobytes()}  # fastavro needs bytes


def _avro_touch(record: str, r: dict[str, Any]) -> Any:
    if record == "control":
        return r["seq"]
    if record == "sensor":
        return r["values"][0]
    return r["data"][0]


BUILD: dict[str, Callable[[str, dict[str, Any], int], Any]] = {
    "arrow": _arrow_build,
    "capnp": _capnp_build,
    "flatbuffers": _fbs_build,
    "avro": _avro_build,
}
TOUCH: dict[str, Callable[[str, Any], Any]] = {
    "arrow": _arrow_touch,
    "capnp": _capnp_touch,
    "flatbuffers": _fbs_touch,
    "avro": _avro_touch,
}


def codec_for(fmt: str, record: str) -> Any:
    """The Doradus codec a dataflow output of this format and record would use."""
    from doradus.codecs import FormatSpec, get_codec

    if fmt == "arrow":
        return get_codec(FormatSpec("arrow"))
    path = SCHEMAS / f"{record}{SUFFIX[fmt]}"
    return get_codec(FormatSpec(fmt, path, None if fmt == "avro" else TYPES[record]))


def env_list(name: str, default: tuple[str, ...]) -> list[str]:
    return [s for s in os.environ.get(name, ",".join(default)).split(",") if s]
