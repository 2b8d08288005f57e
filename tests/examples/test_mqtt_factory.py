"""examples/mqtt-factory: devices → MQTT → dataflow → MQTT, on a real Mosquitto."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from tests.conftest import Ran
from tests.examples.conftest import full_size


def test_readings_are_aggregated_and_alarms_published(
    run_example: Callable[..., Ran], mqtt_url: str, tmp_path: Path
) -> None:
    readings = 5_000 if full_size() else 120
    prefix = f"doradus-test-{uuid.uuid4().hex[:8]}/"  # a namespace of our own on a shared broker
    alarms: list[dict[str, float]] = []
    subscribed = threading.Event()
    url = urlsplit(mqtt_url)
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    listener.on_subscribe = lambda *_: subscribed.set()
    listener.on_message = lambda _c, _u, message: alarms.append(json.loads(message.payload))
    listener.connect(url.hostname or "127.0.0.1", url.port or 1883)
    listener.loop_start()
    try:
        listener.subscribe(f"{prefix}alarms/factory", qos=1)
        assert subscribed.wait(10), "the broker did not confirm the test's subscription"
        result_file = tmp_path / "stats.json"
        env = {
            "MQTT_URL": mqtt_url,
            "TOPIC_PREFIX": prefix,
            "READINGS": str(readings),
            "RESULT": str(result_file),
        }
        ran = run_example(
            "mqtt-factory", *(arg for k, v in env.items() for arg in ("--env", f"{k}={v}")), timeout=300
        )
        assert ran.returncode == 0, ran.output
        expected_alarms = sum(1 for seq in range(readings) if seq % 30 > 25)
        deadline = time.monotonic() + 10  # the broker forwards the last alarms as the run ends
        while len(alarms) < expected_alarms and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        listener.loop_stop()
        listener.disconnect()

    stats = json.loads(result_file.read_text())
    temperatures = [60.0 + seq % 30 for seq in range(readings)]
    pressures = [1.0 + (seq % 10) / 100 for seq in range(readings)]
    for topic, values in (
        (f"{prefix}factory/temperature", temperatures),
        (f"{prefix}factory/pressure", pressures),
    ):
        s = stats[topic]
        assert (s["count"], s["min"], s["max"]) == (readings, min(values), max(values)), topic
        assert s["sum"] == pytest.approx(sum(values)), topic
    assert sorted(stats) == sorted([f"{prefix}factory/temperature", f"{prefix}factory/pressure"])
    # QoS 1 and a listener subscribed before the run: every alarm arrives, in order.
    want = [{"seq": seq, "celsius": t} for seq, t in enumerate(temperatures) if t > 85]
    assert alarms == want
    print(f"\nmqtt-factory: {'; '.join(ran.lines_of('aggregator'))}; {len(alarms)} alarms")
