"""`make soak`: the soak and chaos parts in turn, their figures, and a summary table.

Parts (``--only``, comma-separated; every part by default, in this order):

- ``chain``: 1,000,000 numbered messages through source → middle → sink, twice: with
  backpressure (zero loss) and with ``queue_size: 2`` (losses = Doradus's drop counters).
- ``chaos``: SIGKILL of a random node every 3 s for SOAK_MINUTES (5), ``restart_policy: always``.
- ``big``: 40 MiB messages into a slow consumer for 3 minutes: memory flat.
- ``coordinator``: the coordinator of ``doradus up`` SIGKILLed and started again under load.
- ``record``: 1 GiB recorded with ``doradus record`` and replayed; ``record --attach`` SIGKILLed.

Each part prints its checks as it goes, exits non-zero when one fails (run alone:
``.venv/bin/python benchmarks/soak/<part>.py``), and merges its figures into
``benchmarks/results/soak.json``; ``soak.md`` holds the summary table. Shorter runs:
``SOAK_MESSAGES=100000 SOAK_MINUTES=0.5``. Each part's docstring lists its variables.

    .venv/bin/python benchmarks/soak/run.py [--only chain,chaos,big,coordinator,record]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import big
import chain
import chaos
import coordinator
import record
from harness import RESULTS, read_json
from results import table

PARTS = {
    "chain": lambda: chain.main([]),
    "chaos": chaos.main,
    "big": big.main,
    "coordinator": coordinator.main,
    "record": record.main,
}
RECORDED = {
    "chain": ("chain-backpressure", "chain-small-queues"),
    "chaos": ("chaos",),
    "big": ("big",),
    "coordinator": ("coordinator",),
    "record": ("record",),
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help=f"comma-separated parts: {', '.join(PARTS)}")
    args = parser.parse_args(argv)
    parts = args.only.split(",") if args.only else list(PARTS)
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part: {', '.join(sorted(unknown))} (known: {', '.join(PARTS)})")
    started = time.monotonic()
    failed = []
    for name in parts:
        print(f"\n== soak: {name}", flush=True)
        if PARTS[name]() != 0:
            failed.append(name)
    results = Path(os.environ.get("SOAK_RESULTS") or RESULTS)
    doc = read_json(results / "soak.json") or {}
    shown = {k: v for k, v in doc.get("parts", {}).items() if any(k in RECORDED[p] for p in parts)}
    print(f"\n== soak: done in {time.monotonic() - started:.0f} s ({results / 'soak.json'})\n")
    print(table({"parts": shown}))
    if failed:
        print(f"\nfailed: {', '.join(failed)} (their checks marked FAIL above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
