"""Recording at volume: 1 GiB recorded and replayed, and a recorder SIGKILLed mid-run.

Three phases, each in a folder and runtime folder of its own, on messages of SOAK_RECORD_SIZE
random bytes (1 MiB: nothing compresses, the file holds what was sent), numbered
(`nodes/noise.py`) and checked by `nodes/sink.py`:

1. **record**: `doradus record` of noise → sink, SOAK_RECORD_MESSAGES (1100: over 1 GiB) at
   SOAK_RECORD_RATE a second (40); the run ends when the source has sent them all. Checked:
   the file holds at least 1 GiB and is finished; it holds every message sent, in order (read
   with the plain ``mcap`` reader), none dropped; the recorder node's memory stays flat.
2. **replay**: `doradus replay` of that file at the recorded pace, the sink behind a
   ``backpressure`` input: every recorded message arrives, in order; the replayer's memory
   stays flat.
3. **kill**: `doradus up`, the same source started detached (endless), `doradus record
   --attach` for SOAK_RECORD_KILL_S seconds (20), then SIGKILL. Checked: the plain ``mcap``
   reader reads the file up to its cut, more than 0 messages, numbered without a gap;
   `doradus recording info` reads as many and says the file was not finished; the dataflow
   runs on; the recorder's memory stayed flat while it ran.

"Flat": a process's highest resident memory over the last fifth of its phase is at most
`SLACK` above its highest over the second fifth; and no recorder or replayer process (nor
`doradus replay` itself) ever holds `BOUND` (256 MiB): memory follows the chunks and queues,
not the file. RSS is sampled every 0.5 s (psutil).

    SOAK_RECORD_MESSAGES=300 .venv/bin/python benchmarks/soak/record.py
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from coordinator import Cluster
from harness import DORADUS, NODES, DoradusRun, env_number, eventually, read_json
from results import Part, record
from watch import MIB, shm_created, sockets_under

SLACK = 32 * MIB
"""How much higher a process's memory may end than it was early on: a few messages and chunks."""
BOUND = 256 * MIB
"""The most a recorder or replayer process may hold, whatever the file's size: a few chunks, the
queues and the shared-memory pool, not the recording."""
NAME = "soak-record"
PLAIN_READ = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import pyarrow as pa
    from mcap.reader import NonSeekingReader

    seqs, cut = [], None
    with open(sys.argv[1], "rb") as f:
        try:
            for schema, channel, message in NonSeekingReader(f).iter_messages(log_time_order=False):
                if channel.message_encoding != "arrow.ipc.stream":
                    continue
                value = pa.ipc.open_stream(message.data).read_all().column("value").chunk(0)
                words = np.frombuffer(value.buffers()[1], dtype="<i8", count=2, offset=value.offset)
                seqs.append(int(words[1]))
        except Exception as exc:  # the cut of a file whose recorder was killed
            cut = type(exc).__name__
    gaps = sum(b - a - 1 for a, b in zip(seqs, seqs[1:]) if b > a + 1)
    back = sum(1 for a, b in zip(seqs, seqs[1:]) if b <= a)
    print(json.dumps({"messages": len(seqs), "first": seqs[0] if seqs else None,
                      "last": seqs[-1] if seqs else None, "gaps": gaps, "out_of_order": back, "cut": cut}))
    """
)


class Command(DoradusRun):
    """`DoradusRun` running another command than `doradus run` (`record`, `replay`)."""

    def __init__(self, name: str, *args: str) -> None:
        super().__init__(name)
        self.args = args

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(DORADUS), *self.args, "--log-format", "compact", "--no-color"],
                cwd=self.work,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.watch.start()


class PidWatch(threading.Thread):
    """The resident memory of one process every 0.5 s, until it ends."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True, name="pid-watch")
        self.proc = psutil.Process(pid)
        self.samples: list[tuple[float, int]] = []
        self.start_t = time.monotonic()

    def run(self) -> None:
        while True:
            try:
                used = self.proc.memory_info().rss
            except psutil.Error:
                return
            if used:  # 0: not started yet, or ended and not reaped
                self.samples.append((time.monotonic() - self.start_t, used))
            time.sleep(0.5)


def flat(series: list[tuple[float, int]]) -> dict[str, Any]:
    """Start, peak and end (MiB) of ``(t, rss)`` samples, and whether the last fifth stayed flat."""
    if len(series) < 5:
        return {"samples": len(series), "flat": False}
    start, end = series[0][0], series[-1][0]
    span = end - start
    early = [v for t, v in series if start + span / 5 <= t <= start + 2 * span / 5]
    late = [v for t, v in series if t >= start + 4 * span / 5]
    values = [v for _t, v in series]
    step = max(1, len(series) // 16)
    return {
        "samples": len(series),
        "start_mib": round(values[0] / MIB, 1),
        "peak_mib": round(max(values) / MIB, 1),
        "end_mib": round(values[-1] / MIB, 1),
        "second_fifth_peak_mib": round(max(early, default=0) / MIB, 1),
        "last_fifth_peak_mib": round(max(late, default=0) / MIB, 1),
        "flat": max(late, default=0) <= max(early, default=0) + SLACK,
        "series_s_mib": [(round(t - start), round(v / MIB)) for t, v in series[::step]],
    }


def label_series(run: DoradusRun, label: str) -> list[tuple[float, int]]:
    return [(s.t, s.rss[label]) for s in run.watch.samples if label in s.rss]


def plain_read(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_READ, str(path)], capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        return {"messages": 0, "error": done.stderr.strip()[-300:]}
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def info(path: Path, cwd: Path) -> dict[str, Any]:
    done = subprocess.run(
        [str(DORADUS), "recording", "info", str(path), "--output", "json"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )
    return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr.strip()[-300:]}


def nodes(source_env: dict[str, Any], sink_env: dict[str, Any], sink_input: Any) -> dict[str, Any]:
    return {
        "nodes": [
            {
                "id": "source",
                "path": str(NODES / "noise.py"),
                "inputs": {"tick": "dora/timer/millis/500"},  # keeps its event stream open (Stop)
                "outputs": ["out"],
                "env": {k: str(v) for k, v in source_env.items()},
            },
            {
                "id": "sink",
                "path": str(NODES / "sink.py"),
                "inputs": {"in": sink_input},
                "env": {k: str(v) for k, v in sink_env.items()},
            },
        ]
    }


def cleanup(part: Part, phase: str, figures: dict[str, Any]) -> None:
    part.figures.setdefault("cleanup", {})[phase] = figures
    left = figures["leftover_processes"] + figures["shm_created_left"] + figures["runtime_left"]
    part.check(f"{phase}: no process, /dev/shm entry, run folder or socket left", not left, left or 0)


def phase_record(part: Part, count: int, rate: float, size: int) -> tuple[Command, dict[str, Any]]:
    run = Command("record", "record", "dataflow.yml", "-o", "run.mcap")
    run.write(
        nodes(
            {"SOAK_COUNT": count, "SOAK_RATE": rate, "SOAK_SIZE": size, "SOAK_OUT": run.file("source.json")},
            {"SOAK_OUT": run.file("sink.json")},
            "source/out",
        )
    )
    print(f"[soak record] record: {count} x {size // MIB} MiB at {rate:g}/s …", flush=True)
    began = time.monotonic()
    run.start()
    code = run.wait(timeout=count / rate * 4 + 120)
    seconds = time.monotonic() - began
    part.check("record: the run ended by itself, exit 0", code == 0, f"exit {code} after {seconds:.0f} s")
    sent = int((read_json(run.file("source.json")) or {}).get("sent", 0))
    path = run.file("run.mcap")
    size_b = path.stat().st_size if path.exists() else 0
    summary = info(path, run.work)
    plain = plain_read(path)
    topic = next((t for t in summary.get("topics", []) if t.get("topic") == "source/out"), {})
    memory = flat(label_series(run, "node doradus-recorder"))
    figures = {
        "seconds": round(seconds, 1),
        "sent": sent,
        "recorded": topic.get("messages"),
        "dropped": topic.get("dropped"),
        "file_mib": round(size_b / MIB, 1),
        "write_mib_s": round(size_b / MIB / seconds, 1) if seconds else None,
        "complete": summary.get("complete"),
        "compression": summary.get("compression"),
        "plain_reader": plain,
        "recorder_memory": memory,
        "tree_memory": run.watch.memory(),
    }
    part.figures["record"] = figures
    part.check("record: the file holds at least 1 GiB", size_b >= 1 << 30, f"{size_b / MIB:,.0f} MiB")
    part.check(
        "record: finished (summary and footer)", summary.get("complete") is True, summary.get("error", "")
    )
    part.check(
        "record: every message sent is in the file, in order, none dropped",
        sent > 0
        and topic.get("messages") == sent == plain.get("messages")
        and topic.get("dropped") == 0
        and plain.get("gaps") == 0
        and plain.get("out_of_order") == 0
        and plain.get("first") == 0,
        f"sent {sent}, recorded {topic.get('messages')} (plain reader {plain.get('messages')}), "
        f"dropped {topic.get('dropped')}, gaps {plain.get('gaps')}",
    )
    part.check("record: the recorder's memory stays flat", memory.get("flat"), _mem(memory))
    part.check(
        f"record: the recorder holds less than {BOUND // MIB} MiB",
        0 < memory.get("peak_mib", 0) < BOUND / MIB,
        f"peak {memory.get('peak_mib')} MiB",
    )
    cleanup(part, "record", run.cleanup_figures())
    return run, figures


def phase_replay(part: Part, recorded: Command, count: int) -> dict[str, Any]:
    run = Command("replay", "replay", str(recorded.file("run.mcap")), "--dataflow", "replay.yml")
    run.path = run.work / "replay.yml"
    backpressure = {"source": "source/out", "queue_size": 16, "queue_policy": "backpressure"}
    run.write(nodes({}, {"SOAK_OUT": run.file("sink.json")}, backpressure))
    print("[soak record] replay at the recorded pace …", flush=True)
    began = time.monotonic()
    run.start()
    code = run.wait(timeout=count / 10 + 300)
    seconds = time.monotonic() - began
    sink = read_json(run.file("sink.json")) or {}
    memory = flat(label_series(run, "node source"))
    command = flat(label_series(run, "doradus"))
    figures = {
        "seconds": round(seconds, 1),
        "received": sink.get("received"),
        "missing": sink.get("missing"),
        "out_of_order": sink.get("out_of_order"),
        "replayer_memory": memory,
        "replay_command_memory": command,
        "tree_memory": run.watch.memory(),
    }
    part.figures["replay"] = figures
    part.check("replay: ended by itself, exit 0", code == 0, f"exit {code} after {seconds:.0f} s")
    part.check(
        "replay: every recorded message arrived, in order",
        sink.get("received") == count and sink.get("missing") == 0 and sink.get("out_of_order") == 0,
        f"received {sink.get('received')} of {count}, missing {sink.get('missing')}, "
        f"out of order {sink.get('out_of_order')}",
    )
    part.check("replay: the replayer's memory stays flat", memory.get("flat"), _mem(memory))
    peaks = {"replayer": memory.get("peak_mib", 0), "`doradus replay`": command.get("peak_mib", 0)}
    part.check(
        f"replay: each process holds less than {BOUND // MIB} MiB (not the recording)",
        all(0 < v < BOUND / MIB for v in peaks.values()),
        ", ".join(f"{k} peak {v} MiB" for k, v in peaks.items()),
    )
    cleanup(part, "replay", run.cleanup_figures())
    kept = run.close(keep=not part.passed)
    if kept:
        part.figures["kept_replay"] = kept
    return figures


def phase_kill(part: Part, rate: float, size: int, seconds: float) -> dict[str, Any]:
    cluster = Cluster()
    progress = cluster.work / "progress.json"
    source = {"SOAK_RATE": rate, "SOAK_SIZE": size}
    (cluster.work / "dataflow.yml").write_text(
        json.dumps(nodes(source, {"SOAK_PROGRESS": progress}, "source/out"), indent=2)
    )
    cluster.watch.start()
    figures: dict[str, Any] = {}
    print(f"[soak record] kill: record --attach for {seconds:.0f} s, then SIGKILL …", flush=True)
    try:
        if part.check("kill: doradus up", cluster("up").returncode == 0):
            started = cluster("start", "dataflow.yml", "--detach", "--name", NAME)
            if part.check("kill: doradus start --detach", started.returncode == 0, started.stderr[-300:]):
                figures = attach_and_kill(part, cluster, progress, seconds)
        part.check("kill: doradus destroy", cluster("destroy").returncode == 0)
    finally:
        cluster.watch.finish()
    alive, _zombies = cluster.watch.leftovers()
    ours, _others = shm_created(cluster.shm_before, cluster.watch)
    cleanup(
        part,
        "kill",
        {
            "leftover_processes": alive,
            "shm_created_left": ours,
            "runtime_left": sockets_under(cluster.runtime),
        },
    )
    part.figures["kill"] = figures
    kept = cluster.close(keep=not part.passed)
    if kept:
        part.figures["kept_kill"] = kept
    return figures


def attach_and_kill(part: Part, cluster: Cluster, progress: Path, seconds: float) -> dict[str, Any]:
    def received() -> int:
        return int((read_json(progress) or {}).get("received", 0))

    part.check("kill: the sink receives", eventually(lambda: received() > 10, 60), received())
    out = cluster.work / "attach.mcap"
    log = cluster.work / "attach.log"
    with open(log, "wb") as sink:
        recorder = subprocess.Popen(
            [str(DORADUS), "record", "--attach", NAME, "-o", str(out)],
            cwd=cluster.work,
            env=cluster.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    watch = PidWatch(recorder.pid)
    watch.start()
    time.sleep(seconds)
    alive = recorder.poll() is None
    recorder.send_signal(signal.SIGKILL)
    recorder.wait()
    watch.join(timeout=5)
    size_b = out.stat().st_size if out.exists() else 0
    plain = plain_read(out)
    summary = info(out, cluster.work)
    before = received()
    runs_on = eventually(lambda: received() > before + 10, 30)
    memory = flat(watch.samples)
    figures = {
        "seconds": seconds,
        "file_mib": round(size_b / MIB, 1),
        "plain_reader": plain,
        "info_messages": summary.get("messages"),
        "info_complete": summary.get("complete"),
        "info_damage": summary.get("damage"),
        "recorder_memory": memory,
    }
    part.check("kill: the recorder ran until killed", alive, log.read_text(errors="replace")[-300:])
    part.check(
        "kill: the plain mcap reader reads the cut file up to its cut, numbered without a gap",
        plain.get("messages", 0) > 0 and plain.get("gaps") == 0 and plain.get("out_of_order") == 0,
        f"{plain.get('messages')} messages ({size_b / MIB:,.0f} MiB), seq {plain.get('first')}"
        f"..{plain.get('last')}, stopped by {plain.get('cut')}",
    )
    part.check(
        "kill: `recording info` reads as many and says it was not finished",
        summary.get("complete") is False and summary.get("messages") == plain.get("messages"),
        f"{summary.get('messages')} messages, complete {summary.get('complete')}",
    )
    part.check("kill: the dataflow runs on after the recorder's death", runs_on, f"{before} → {received()}")
    part.check("kill: the attached recorder's memory stays flat", memory.get("flat"), _mem(memory))
    part.check(
        f"kill: the attached recorder holds less than {BOUND // MIB} MiB",
        0 < memory.get("peak_mib", 0) < BOUND / MIB,
        f"peak {memory.get('peak_mib')} MiB",
    )
    return figures


def _mem(memory: dict[str, Any]) -> str:
    m = memory.get
    return (
        f"start {m('start_mib')} MiB, peak {m('peak_mib')} MiB, end {m('end_mib')} MiB "
        f"(2nd fifth peak {m('second_fifth_peak_mib')}, last fifth {m('last_fifth_peak_mib')})"
    )


def main() -> int:
    count = int(env_number("SOAK_RECORD_MESSAGES", 1100))
    rate = env_number("SOAK_RECORD_RATE", 40)
    size = int(env_number("SOAK_RECORD_SIZE", MIB))
    kill_s = env_number("SOAK_RECORD_KILL_S", 20)
    part = Part(
        "record", f"{count} x {size // MIB} MiB recorded at {rate:g}/s, replayed; a recorder SIGKILLed"
    )
    recorded, rec = phase_record(part, count, rate, size)
    rep = phase_replay(part, recorded, count) if rec.get("recorded") else {}
    kept = recorded.close(keep=not part.passed)
    if kept:
        part.figures["kept_record"] = kept
    kill = phase_kill(part, rate, size, kill_s)
    readable = (kill.get("plain_reader") or {}).get("messages")
    lost = rec.get("sent", 0) - (rec.get("recorded") or 0)
    mem = {
        k: v.get("peak_mib")
        for k, v in (
            ("recorder", rec.get("recorder_memory", {})),
            ("replayer", rep.get("replayer_memory", {})),
            ("`doradus replay`", rep.get("replay_command_memory", {})),
            ("attached recorder", kill.get("recorder_memory", {})),
        )
    }
    part.summary = {
        "messages": f"{rec.get('recorded')} x {size // MIB} MiB recorded ({rec.get('file_mib')} MiB), "
        f"{rep.get('received')} replayed; killed: {readable} readable",
        "duration": f"record {rec.get('seconds')} s, replay {rep.get('seconds')} s, attach {kill_s:.0f} s",
        "drops vs counters": f"{rec.get('dropped')} dropped, {lost} lost",
        "restarts": "—",
        "peak RSS": ", ".join(f"{k} {v} MiB" for k, v in mem.items()),
        "left over": "none"
        if all(c["passed"] for c in part.checks if "left" in c["check"])
        else "see checks",
    }
    record(part)
    print(f"[soak record] {'passed' if part.passed else 'FAILED'}: {part.summary}", flush=True)
    return 0 if part.passed else 1


if __name__ == "__main__":
    sys.exit(main())
