"""`doradus replay` reproduces what the nodes downstream of a replaced node received."""

from __future__ import annotations

import pytest
from tests.conftest import Ran
from tests.recording.conftest import INTERVAL_MS, MESSAGES, Pipeline

SPAN = (MESSAGES - 1) * INTERVAL_MS / 1000
"""Seconds from the source's first message to its last, as recorded (its timer's pace)."""
LATE = 0.5
"""How much later than the recorded pace a replay may end: a loaded machine delays processes."""
EARLY = 0.05
"""How much earlier: the replayer never sends before a message's time (this is scheduling slack)."""


def _span(rows: list[dict[str, float]]) -> float:
    return rows[-1]["at"] - rows[0]["at"]


def test_replacing_the_source_gives_the_sink_the_same_values_metadata_and_order(
    recorded: tuple[Pipeline, Ran],
) -> None:
    pipeline, _ = recorded
    ran = pipeline.doradus("replay", "run.mcap", "--replace", "source", "--no-color", sink="replayed.jsonl")
    assert ran.returncode == 0, ran.output
    assert "Replaying source/count in place of node 'source' at 1x" in ran.stderr
    assert ran.lines_of("source") == [f"replayed {MESSAGES} messages"]

    original, replayed = pipeline.sink(), pipeline.sink("replayed.jsonl")
    assert [(r["value"], r["metadata"]) for r in replayed] == [(r["value"], r["metadata"]) for r in original]
    assert replayed[0]["metadata"] == {"seq": 1, "tags": ["a", "b"], "stage": "doubled"}
    # timing: the recorded pace, within the tolerance stated above
    assert SPAN - EARLY <= _span(replayed) <= _span(original) + LATE


def test_speed_two_replays_twice_as_fast(recorded: tuple[Pipeline, Ran]) -> None:
    pipeline, _ = recorded
    ran = pipeline.doradus("replay", "run.mcap", "--speed", "2", "--no-color", sink="fast.jsonl")
    assert ran.returncode == 0, ran.output
    assert "in place of node 'source' at 2x" in ran.stderr  # the source is replaced by default
    fast = pipeline.sink("fast.jsonl")
    assert len(fast) == MESSAGES
    assert SPAN / 2 - EARLY <= _span(fast) <= SPAN / 2 + LATE


def test_speed_zero_loses_nothing_where_a_fast_replay_drops(recorded: tuple[Pipeline, Ran]) -> None:
    pipeline, _ = recorded
    # the transform takes 20 ms a message and queues 10: a burst of 20 overflows its queue...
    burst = pipeline.doradus(
        "replay", "run.mcap", "--speed", "1000", "--no-color", sink="burst.jsonl", TRANSFORM_DELAY="0.02"
    )
    assert burst.returncode == 0, burst.output
    assert len(pipeline.sink("burst.jsonl")) < MESSAGES
    assert "input transform/count dropped" in burst.stderr
    # ...except at --speed 0, which lets the queues it feeds hold every replayed message
    whole = pipeline.doradus(
        "replay", "run.mcap", "--speed", "0", "--no-color", sink="whole.jsonl", TRANSFORM_DELAY="0.02"
    )
    assert whole.returncode == 0, whole.output
    assert [r["value"] for r in pipeline.sink("whole.jsonl")] == [r["value"] for r in pipeline.sink()]
    assert "dropped" not in whole.stderr


def test_speed_zero_loses_nothing_behind_a_slow_node_downstream(recorded: tuple[Pipeline, Ran]) -> None:
    pipeline, _ = recorded
    # the sink (queue 10, two hops from the replayer) takes 20 ms a message: the transform waits
    ran = pipeline.doradus(
        "replay", "run.mcap", "--speed", "0", "--no-color", sink="slow-sink.jsonl", SINK_DELAY="0.02"
    )
    assert ran.returncode == 0, ran.output
    assert [r["value"] for r in pipeline.sink("slow-sink.jsonl")] == [r["value"] for r in pipeline.sink()]
    assert "dropped" not in ran.stderr


def test_topics_leaves_the_other_outputs_of_a_replaced_node_silent(recorded: tuple[Pipeline, Ran]) -> None:
    pipeline, _ = recorded
    # the transform replaced by its recording; nothing of source/count is replayed
    ran = pipeline.doradus(
        "replay",
        "run.mcap",
        "--replace",
        "transform",
        "--speed",
        "0",
        "--no-color",
        sink="from-transform.jsonl",
    )
    assert ran.returncode == 0, ran.output
    assert [r["value"] for r in pipeline.sink("from-transform.jsonl")] == [
        r["value"] for r in pipeline.sink()
    ]

    silent = pipeline.doradus(
        "replay", "run.mcap", "--replace", "transform", "--topics", "source", "--no-color", sink="none.jsonl"
    )
    assert silent.returncode == 0, silent.output
    assert "Replaying nothing in place of node 'transform'" in silent.stderr
    assert pipeline.sink("none.jsonl") == []


def test_loop_starts_again_until_stopped(recorded: tuple[Pipeline, Ran]) -> None:
    pipeline, _ = recorded
    # a pass takes SPAN / 4 at --speed 4: 3 s leave time to start the nodes and for many passes
    ran = pipeline.doradus(
        "replay", "run.mcap", "--loop", "--speed", "4", "--stop-after", "3s", "--no-color", sink="loop.jsonl"
    )
    assert ran.returncode == 0, ran.output
    values = [r["value"][0]["x"] for r in pipeline.sink("loop.jsonl")]
    assert len(values) > MESSAGES, "it did not start again"
    assert values[MESSAGES] == values[0]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--replace", "camera"], "--replace 'camera': the dataflow has no such node"),
        (["--replace", "sink"], "--replace 'sink': the recording holds no output of it"),
        (["--speed", "0", "--loop"], "--speed 0 with --loop would queue without end"),
    ],
)
def test_what_cannot_be_replayed_is_refused_with_the_cause(
    recorded: tuple[Pipeline, Ran], args: list[str], error: str
) -> None:
    pipeline, _ = recorded
    ran = pipeline.doradus("replay", "run.mcap", *args, "--no-color", sink="refused.jsonl")
    assert ran.returncode == 2
    assert error in ran.stderr


def test_a_given_dataflow_is_run_instead_of_the_recorded_one(recorded: tuple[Pipeline, Ran]) -> None:
    pipeline, _ = recorded
    changed = pipeline.folder / "changed.yml"
    text = (pipeline.folder / "dataflow.yml").read_text()
    # only the given file sends the sink's rows to given.jsonl (a node's env wins over the run's)
    changed.write_text(text.replace("path: sink.py", "path: sink.py\n    env:\n      SINK_OUT: given.jsonl"))
    ran = pipeline.doradus("replay", "run.mcap", "--dataflow", str(changed), "--speed", "0", "--no-color")
    assert ran.returncode == 0, ran.output
    assert [r["value"] for r in pipeline.sink("given.jsonl")] == [r["value"] for r in pipeline.sink()]
