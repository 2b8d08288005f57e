"""Coverage-guided fuzzing (atheris) of the hostile-input targets `tests/fuzz/` tests with hypothesis.

Each target takes raw bytes: the dataflow loader (as UTF-8 text), the frame decoder with the
node's message decoder behind it, the metadata decoder, and each codec's decoder. The only
allowed outcomes are a result or a `DoradusError` with a message; anything else is a crash,
which atheris reports with the input that caused it (saved as ``crash-<hash>``).

Usage (from the project root; ``make fuzz-atheris`` runs every target for FUZZ_SECONDS)::

    .venv/bin/python tools/fuzz_atheris.py frame -max_total_time=60
    .venv/bin/python tools/fuzz_atheris.py avro -runs=100000 corpus-dir/

Arguments after the target are libFuzzer's (``-help=1`` lists them).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports():
    from doradus import DoradusError
    from doradus._dataflow.loader import load_dataflow_text
    from doradus._node.receive import decode_input
    from doradus._wire.metadata import decode_metadata
    from doradus.backends._frames import decode_frame
    from doradus.codecs import FormatSpec, get_codec

SCHEMAS = Path(__file__).resolve().parent.parent / "tests" / "codecs" / "schemas"
CODECS = {
    "arrow": FormatSpec("arrow"),
    "capnp": FormatSpec("capnp", SCHEMAS / "reading.capnp", "Reading"),
    "flatbuffers": FormatSpec("flatbuffers", SCHEMAS / "reading.fbs", "Reading"),
    "avro": FormatSpec("avro", SCHEMAS / "reading.avsc"),
}


def _frame(data: bytes) -> Any:
    return decode_input("in", decode_frame(data)[1])


def _target(name: str) -> Callable[[bytes], Any]:
    if name == "loader":
        return lambda data: load_dataflow_text(data.decode("utf-8", "replace"), "/srv/fuzz/flow.yml")
    if name == "frame":
        return _frame
    if name == "metadata":
        return decode_metadata
    if name in CODECS:
        return get_codec(CODECS[name]).decode
    raise SystemExit(f"unknown target {name!r}: choose one of loader, frame, metadata, {', '.join(CODECS)}")


TARGETS = ("loader", "frame", "metadata", *CODECS)


def main(argv: list[str]) -> None:
    """Fuzz the target ``argv[1]`` with libFuzzer's arguments ``argv[2:]``."""
    if len(argv) < 2:
        raise SystemExit(f"usage: {argv[0]} TARGET [libFuzzer arguments]; targets: {', '.join(TARGETS)}")
    decode = _target(argv[1])

    def one_input(data: bytes) -> None:
        try:
            decode(data)
        except DoradusError as exc:
            if not str(exc).strip():
                raise AssertionError(f"{type(exc).__name__} without a message") from exc

    atheris.Setup([argv[0], *argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
