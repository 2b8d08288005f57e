"""The parts of ``doradus topic`` that need no running dataflow: refusals, values, rates."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

from doradus._control.topic_rates import RateWindow
from doradus._control.topic_values import render_array, text_of
from doradus._control.topics import split_topic
from doradus._dataflow.loader import load_dataflow_text
from doradus._runtime.state import RunState
from doradus._runtime.topic_facts import tap_refusal, topic_facts
from doradus._runtime.topic_messages import TopicError
from doradus._runtime.topic_pub import Publisher, encode_value

FLOW = """
    nodes:
      - id: camera
        path: dynamic
        outputs: [frame]
      - id: viewer
        path: dynamic
        inputs:
          frame: camera/frame
      - id: saver
        path: dynamic
        inputs:
          frame: {source: camera/frame, queue_policy: backpressure}
"""


def _state(text: str = FLOW, placement: dict[str, str] | None = None) -> RunState:
    flow = load_dataflow_text(textwrap.dedent(text), "/tmp/project/dataflow.yml")
    state = RunState.create(flow, run_id="r1", machine="m1", out_dir=Path("/tmp/r1"), placement=placement)
    state.started = True
    return state


def test_an_output_of_a_node_elsewhere_is_listed_but_not_tapped() -> None:
    state = _state(placement={"camera": "m2", "viewer": "m1", "saver": "m1"})
    (facts,) = topic_facts(state, {"camera": "m2"})
    assert facts["machine"] == "m2"
    assert facts["state"] == "elsewhere"
    assert facts["subscribers"] == ["viewer/frame", "saver/frame"]
    refusal = tap_refusal(state, "camera", "frame", {"camera": "m2"})
    assert refusal is not None
    assert "runs on machine 'm2'" in str(refusal)
    assert refusal.fix == "run the command on that machine"


def test_a_node_with_links_on_another_backend_is_not_tapped() -> None:
    state = _state(
        FLOW.replace("        outputs: [frame]\n", "        outputs: [frame]\n        communication: tcp\n")
    )
    refusal = tap_refusal(state, "camera", "frame", {})
    assert refusal is not None
    assert "has links on tcp" in str(refusal)


def test_a_node_not_running_yet_and_unknown_names_are_refused() -> None:
    state = _state()
    not_yet = tap_refusal(state, "camera", "frame", {})
    assert not_yet is not None
    assert "not running" in str(not_yet)
    assert "has no node 'radar'" in str(tap_refusal(state, "radar", "frame", {}))
    assert "its outputs: frame" in str(tap_refusal(state, "camera", "image", {}))


def test_pub_says_why_no_receiver_could_be_reached() -> None:
    state = _state(placement={"camera": "m1", "viewer": "m2", "saver": "m1"})
    publisher = Publisher(state)
    try:
        with pytest.raises(TopicError) as refused:
            publisher.publish(
                {"op": "pub", "node": "camera", "output": "frame", "value": [1], "metadata": {}}
            )
    finally:
        publisher.close()
    assert "viewer/frame: it runs on another machine" in str(refused.value)
    assert "saver/frame: its queue_policy is backpressure" in str(refused.value)


def test_pub_values_become_arrays_and_refuse_what_does_not_fit() -> None:
    assert encode_value(3.5, None)[0].to_pylist() == [3.5]
    assert encode_value(["a", "b"], None)[0].type == pa.string()
    with pytest.raises(TopicError, match="cannot be made an Arrow array"):
        encode_value(["a", 1], None, "int8")


def test_echo_cuts_a_big_array_and_says_its_type_and_length() -> None:
    shown = render_array(pa.array(range(1_000_000), pa.int32()), max_items=3)
    assert text_of(shown) == "[0, 1, 2, …] (int32, 1000000 items)"
    nested = render_array(pa.array([[1, 2, 3, 4]]), max_items=2)
    assert nested.value == [[1, 2, "… 2 more"]]
    assert not nested.truncated


def test_a_window_counts_every_message_and_measures_the_newest() -> None:
    book = RateWindow(window=2)
    for k, stamp_ms in enumerate([0, 100, 120, 140]):
        book.add(seq=k + 1, stamp_ns=stamp_ms * 1_000_000, size=10, skipped=3 if k == 3 else 0)
    stats = book.stats(now_ns=140_000_000)
    assert stats.count == 4
    assert stats.window == 2
    assert stats.rate_hz == 50.0  # the last two intervals, not the first (100 ms)
    assert stats.skipped == 3


@pytest.mark.parametrize("topic", ["camera", "/frame", "camera/"])
def test_a_topic_is_node_slash_output(topic: str) -> None:
    with pytest.raises(TopicError, match="is not NODE/OUTPUT"):
        split_topic(topic)
