"""Slow consumer, big messages: 40 MiB messages from a fast producer into a slow consumer.

`doradus run`, shm backend: the producer sends a 40 MiB numbered payload SOAK_BIG_RATE times a
second (10); the consumer reads every page of each message it takes and works 0.25 s on it,
behind an input of ``queue_size: 2``, ``drop_oldest``. For SOAK_BIG_MINUTES (3; at most
SOAK_MINUTES when that is set), then Ctrl-C. A quarter into the run the consumer is frozen
(SIGSTOP) for SOAK_BIG_FREEZE_S seconds (4), then resumed. The producer has
``shared_memory_pool_size: 256MiB``. Checked:

- while the consumer is frozen, the producer's pool stays within its ``shared_memory_pool_size``
  (the consumer holds at most 256 MiB of it: at most six 64 MiB segments in all);

- the resident memory of every process stays flat: its highest value over the last fifth of
  the run is at most one message (plus a little) above its highest over the second fifth;
- the messages lost (sent - received) equal what Doradus counted: ``dropped`` in
  ``edges.json`` plus what was still queued at the end (``undelivered``);
- no process, /dev/shm entry, run folder or socket is left.

    SOAK_BIG_MINUTES=0.5 .venv/bin/python benchmarks/soak/big.py
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

from harness import DoradusRun, env_number, minutes, node, read_json
from results import Part, fmt_mib, record
from watch import MIB, Sample

SIZE = 40 * MIB
WORK_S = 0.25
POOL_SIZE = 256 * MIB
MOST_SEGMENTS = POOL_SIZE // (64 * MIB) + 2
"""What the consumer may hold, plus the segment being written and one in reuse."""
SLACK = SIZE + 16 * MIB
"""How much higher a process's memory may end than it was early on: one message (a segment
mapped once more) and a little for Python's own allocations."""


def dataflow(run: DoradusRun, rate: float) -> dict[str, Any]:
    return {
        "nodes": [
            node(
                "producer",
                "source.py",
                {
                    "SOAK_SIZE": SIZE,
                    "SOAK_RATE": rate,
                    "SOAK_OUT": str(run.file("producer.json")),
                    "SOAK_POOL": str(run.file("pool.json")),
                },
                shared_memory_pool_size=POOL_SIZE,
            ),
            node(
                "consumer",
                "sink.py",
                {"SOAK_WORK_S": WORK_S, "SOAK_OUT": str(run.file("consumer.json"))},
                {"in": {"source": "producer/out", "queue_size": 2, "queue_policy": "drop_oldest"}},
            ),
        ]
    }


def flatness(samples: list[Sample], start: float, end: float) -> dict[str, dict[str, Any]]:
    """Per process: start, peak and end memory, and its peak in the 2nd and the last fifth (MiB)."""
    span = end - start
    early = [s for s in samples if start + span / 5 <= s.t <= start + 2 * span / 5]
    late = [s for s in samples if start + 4 * span / 5 <= s.t <= end]
    inside = [s for s in samples if start <= s.t <= end]
    found = {}
    step = max(1, len(inside) // 18)
    for label in sorted({k for s in inside for k in s.rss}):
        values = [s.rss[label] for s in inside if label in s.rss]
        series = [(round(s.t - start), round(s.rss[label] / MIB)) for s in inside[::step] if label in s.rss]
        early_peak = max((s.rss[label] for s in early if label in s.rss), default=0)
        late_peak = max((s.rss[label] for s in late if label in s.rss), default=0)
        found[label] = {
            "start_mib": round(values[0] / MIB, 1),
            "peak_mib": round(max(values) / MIB, 1),
            "end_mib": round(values[-1] / MIB, 1),
            "second_fifth_peak_mib": round(early_peak / MIB, 1),
            "last_fifth_peak_mib": round(late_peak / MIB, 1),
            "flat": late_peak <= early_peak + SLACK,
            "series_s_mib": series,
        }
    return found


def freeze(run: DoradusRun, seconds: float) -> bool:
    """SIGSTOP the consumer for ``seconds``, then SIGCONT it; False if it was not found."""
    found = [proc for label, proc in run.watch.processes() if label == "node consumer"]
    if not found:
        return False
    print(f"[soak big] freezing the consumer (pid {found[0].pid}) for {seconds:g} s …", flush=True)
    found[0].send_signal(signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        found[0].send_signal(signal.SIGCONT)
    return True


def main() -> int:
    seconds = minutes("SOAK_BIG_MINUTES", 3.0)
    rate = env_number("SOAK_BIG_RATE", 10)
    part = Part(
        "big", f"40 MiB messages at {rate:g}/s into a slow consumer (queue_size 2), {seconds / 60:g} min"
    )
    run = DoradusRun("big")
    run.write(dataflow(run, rate))
    print(
        f"[soak big] 40 MiB x {rate:g}/s into a consumer taking {WORK_S} s each, for {seconds:.0f} s …",
        flush=True,
    )
    run.start()
    started = time.monotonic() - run.watch.start_t
    deadline = time.monotonic() + seconds
    freeze_at, frozen = time.monotonic() + seconds / 4, False
    freeze_s = env_number("SOAK_BIG_FREEZE_S", 4)
    while run.running() and time.monotonic() < deadline:
        time.sleep(0.5)
        if not frozen and time.monotonic() >= freeze_at:
            frozen = freeze(run, freeze_s)
    ended = time.monotonic() - run.watch.start_t
    part.check("the run lasted its time", run.running(), f"{ended - started:.0f} s")
    code = run.stop(timeout=60)
    part.check("Ctrl-C stopped the run, every node exiting 0", code == 0, f"exit {code}")
    producer = read_json(run.file("producer.json")) or {}
    consumer = read_json(run.file("consumer.json")) or {}
    edge = next((e for e in run.edges() if e["target"] == "consumer/in"), {})
    undelivered = sum(
        int((r.get("fields") or {}).get("undelivered", 0))
        for r in run.records()
        if (r.get("fields") or {}).get("event") == "dropped"
    )
    sent, received = int(producer.get("sent", 0)), int(consumer.get("received", 0))
    dropped = int(edge.get("dropped", 0))
    memory = flatness(run.watch.samples, started, ended)
    peak = max((s.total for s in run.watch.samples), default=0) / MIB
    part.figures.update(
        seconds=round(seconds),
        rate_per_s=rate,
        message_mib=SIZE // MIB,
        sent=sent,
        received=received,
        lost=sent - received,
        edge=edge,
        undelivered=undelivered,
        out_of_order=consumer.get("out_of_order"),
        producer_pool_growth=(read_json(run.file("pool.json")) or {}).get("growth"),
        memory=memory,
        peak_tree_mib=round(peak, 1),
        exit_code=code,
    )
    part.check(
        "the producer outran the consumer",
        dropped > 0,
        f"{sent:,} sent, {received:,} taken, {dropped:,} dropped",
    )
    part.check(
        "messages lost = Doradus's counters",
        sent - received == dropped + undelivered,
        f"lost {sent - received:,}; dropped {dropped:,} + undelivered {undelivered:,}",
    )
    part.check("in order", consumer.get("out_of_order") == 0, consumer.get("out_of_order"))
    growth = part.figures["producer_pool_growth"] or []
    most = max((int(g["segments"]) for g in growth), default=0)
    part.check(
        f"the consumer frozen {freeze_s:g} s, the producer's pool within shared_memory_pool_size",
        frozen and most <= MOST_SEGMENTS,
        f"frozen: {frozen}; at most {most} segments of 64 MiB (bound {MOST_SEGMENTS})",
    )
    for label, m in memory.items():
        part.check(
            f"memory of {label} flat",
            m["flat"],
            f"start {m['start_mib']} MiB, peak {m['peak_mib']} MiB, end {m['end_mib']} MiB "
            f"(2nd fifth peak {m['second_fifth_peak_mib']}, last fifth peak {m['last_fifth_peak_mib']})",
        )
    part.cleanup_checks(run.cleanup_figures())
    cleanup = part.figures["cleanup"]
    nodes = {k[5:]: v for k, v in memory.items() if k.startswith("node ")}
    part.summary = {
        "messages": f"{sent:,} x 40 MiB sent, {received:,} taken",
        "duration": f"{seconds:.0f} s",
        "drops vs counters": f"{sent - received:,} lost = {dropped + undelivered:,} counted",
        "restarts": "—",
        "peak RSS": f"{fmt_mib(peak)} tree; "
        + ", ".join(
            f"{n} {v['start_mib']:.0f}/{v['peak_mib']:.0f}/{v['end_mib']:.0f}" for n, v in nodes.items()
        )
        + " MiB (start/peak/end)",
        "left over": (
            f"{len(cleanup['leftover_processes'])} processes, {len(cleanup['shm_created_left'])} /dev/shm, "
            f"{len(cleanup['runtime_left'])} sockets"
        ),
    }
    kept = run.close(keep=not part.passed)
    if kept:
        part.figures["kept"] = kept
        print(f"[soak big] kept {kept}\n{run.log_tail()}", flush=True)
    record(part)
    print(f"[soak big] {'passed' if part.passed else 'FAILED'}: {part.summary}", flush=True)
    return 0 if part.passed else 1


if __name__ == "__main__":
    sys.exit(main())
