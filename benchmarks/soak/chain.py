"""Chain soak: SOAK_MESSAGES numbered messages (1,000,000) through source → middle → sink.

`doradus run`, the shm backend, 16-byte payloads sent back to back; the sink checks the
sequence numbers. Two runs:

- ``chain-backpressure``: both inputs ``queue_policy: backpressure`` with ``queue_size: 10000``:
  nothing may be lost, and every drop and backpressure-timeout counter must read 0.
- ``chain-small-queues``: both inputs ``queue_size: 2``, ``drop_oldest``: what the sequence check
  finds missing must equal, exactly, what Doradus reports dropped — the ``dropped`` of each edge
  in ``edges.json`` and the ``event: dropped`` WARN records of ``logs.jsonl`` (plus any
  ``undelivered``).

    .venv/bin/python benchmarks/soak/chain.py [backpressure|small-queues]   # both by default
    SOAK_MESSAGES=100000 .venv/bin/python benchmarks/soak/chain.py
"""

from __future__ import annotations

import sys
from typing import Any

from harness import DoradusRun, env_number, node, read_json
from results import Part, fmt_mib, record

VARIANTS: dict[str, dict[str, Any]] = {
    "backpressure": {"queue_size": 10000, "queue_policy": "backpressure"},
    "small-queues": {"queue_size": 2, "queue_policy": "drop_oldest"},
}
TITLES = {
    "backpressure": "1M messages, 3-node chain, backpressure (queue_size 10000)",
    "small-queues": "1M messages, 3-node chain, queue_size 2 drop_oldest",
}


def dataflow(run: DoradusRun, messages: int, queue: dict[str, Any]) -> dict[str, Any]:
    out = {name: str(run.file(f"{name}.json")) for name in ("source", "middle", "sink")}
    return {
        "nodes": [
            node("source", "source.py", {"SOAK_COUNT": messages, "SOAK_OUT": out["source"]}),
            node(
                "middle", "relay.py", {"SOAK_OUT": out["middle"]}, {"in": {"source": "source/out", **queue}}
            ),
            node("sink", "sink.py", {"SOAK_OUT": out["sink"]}, {"in": {"source": "middle/out", **queue}}),
        ]
    }


def counters(run: DoradusRun) -> dict[str, Any]:
    """What Doradus reported dropped, per input: edges.json, and the run's `dropped` records."""
    edges = {e["target"]: e for e in run.edges()}
    records: dict[str, dict[str, int]] = {}
    for r in run.records():
        fields = r.get("fields") or {}
        if fields.get("event") == "dropped":
            key = f"{r['node']}/{fields['input']}"
            records[key] = {
                "dropped": int(fields["dropped"]),
                "undelivered": int(fields.get("undelivered", 0)),
            }
    inputs = ("middle/in", "sink/in")
    return {
        "edges_json": {
            k: {
                "messages": edges.get(k, {}).get("messages"),
                "dropped": edges.get(k, {}).get("dropped"),
                "backpressure_timeouts": edges.get(k, {}).get("backpressure_timeouts"),
                "backend": edges.get(k, {}).get("backend"),
            }
            for k in inputs
        },
        "dropped_records": {k: records.get(k, {"dropped": 0, "undelivered": 0}) for k in inputs},
    }


def run_variant(variant: str) -> Part:
    messages = int(env_number("SOAK_MESSAGES", 1_000_000))
    part = Part(f"chain-{variant}", TITLES[variant].replace("1M", f"{messages:,}"))
    run = DoradusRun(part.name)
    run.write(dataflow(run, messages, VARIANTS[variant]))
    print(f"[soak {part.name}] {messages:,} messages through source → middle → sink …", flush=True)
    run.start()
    # Generous: the slowest rate seen on a busy 2-core machine is ~3,000 msg/s with backpressure.
    code = run.wait(timeout=120 + messages / 1000)
    wall = run.watch.samples[-1].t if run.watch.samples else 0.0
    part.check("doradus run ended by itself with status 0", code == 0, f"exit {code}")
    source = read_json(run.file("source.json")) or {}
    middle = read_json(run.file("middle.json")) or {}
    sink = read_json(run.file("sink.json")) or {}
    reported = counters(run)
    edges, records = reported["edges_json"], reported["dropped_records"]
    sent = int(source.get("sent", 0))
    received = int(sink.get("received", 0))
    lost = sent - received
    dropped = sum(int(e["dropped"] or 0) for e in edges.values())
    timeouts = sum(int(e["backpressure_timeouts"] or 0) for e in edges.values())
    undelivered = sum(r["undelivered"] for r in records.values())
    logged = sum(r["dropped"] for r in records.values())
    memory = run.watch.memory()
    first, last = (sink.get("first") or {}).get("0"), (sink.get("last") or {}).get("0")
    # Gaps between received numbers, before the first received and after the last.
    missing = None if first is None or last is None else sink["missing"] + first + (sent - 1 - last)
    part.figures.update(
        messages=messages,
        queue=VARIANTS[variant],
        sent=sent,
        middle_received=middle.get("received"),
        sink_received=received,
        lost=lost,
        sequence_missing=missing,
        out_of_order=sink.get("out_of_order"),
        first_sequence=first,
        last_sequence=last,
        counters=reported,
        counted_dropped=dropped,
        counted_backpressure_timeouts=timeouts,
        counted_undelivered=undelivered,
        wall_s=round(wall, 1),
        send_s=round(float(source.get("seconds", 0)), 1),
        rate_msg_s=round(sent / float(source["seconds"])) if source.get("seconds") else None,
        memory=memory,
    )
    part.check("the source sent every message", sent == messages, f"{sent:,} of {messages:,}")
    part.check("every edge on shm", all(e["backend"] == "shm" for e in edges.values()), edges)
    part.check("sequence numbers in order", sink.get("out_of_order") == 0, sink.get("out_of_order"))
    part.check(
        "the sequence check's gaps are the messages not received",
        missing == lost,
        f"missing {missing}, sent - received {lost}",
    )
    part.check(
        "dropped records of logs.jsonl agree with edges.json",
        logged == dropped,
        f"logs.jsonl {logged:,}, edges.json {dropped:,}",
    )
    if variant == "backpressure":
        part.check("zero loss", lost == 0 and received == messages, f"{received:,} received of {sent:,}")
        part.check(
            "every counter reads 0",
            dropped == timeouts == undelivered == 0,
            f"dropped {dropped}, backpressure timeouts {timeouts}, undelivered {undelivered}",
        )
    else:
        part.check("the small queues dropped messages", dropped > 0, f"{dropped:,} dropped")
    part.check(
        "losses seen by the sequence check = Doradus's counters",
        lost == dropped + timeouts + undelivered,
        f"lost {lost:,}; dropped {dropped:,} + backpressure timeouts {timeouts:,} "
        f"+ undelivered {undelivered:,}",
    )
    part.cleanup_checks(run.cleanup_figures())
    part.summary = {
        "messages": f"{sent:,} sent, {received:,} received",
        "duration": f"{wall:.0f} s ({part.figures['rate_msg_s'] or 0:,} msg/s sent)",
        "drops vs counters": f"{lost:,} lost = {dropped + timeouts + undelivered:,} counted",
        "restarts": "—",
        "peak RSS": fmt_mib(memory["peak_tree_mib"]),
        "left over": leftover_text(part.figures["cleanup"]),
    }
    kept = run.close(keep=not part.passed)
    if kept:
        part.figures["kept"] = kept
        print(f"[soak {part.name}] kept {kept}\n{run.log_tail()}", flush=True)
    return part


def leftover_text(cleanup: dict[str, Any]) -> str:
    return (
        f"{len(cleanup['leftover_processes'])} processes, {len(cleanup['shm_created_left'])} /dev/shm, "
        f"{len(cleanup['runtime_left'])} sockets"
    )


def main(argv: list[str]) -> int:
    variants = argv or list(VARIANTS)
    failed = 0
    for variant in variants:
        part = run_variant(variant)
        record(part)
        print(f"[soak {part.name}] {'passed' if part.passed else 'FAILED'}: {part.summary}", flush=True)
        failed += not part.passed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
