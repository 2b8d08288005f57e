"""MQTT → dataflow: subscribes to factory/+ and sends the readings as Arrow, a batch per tick.

The MQTT callback only parses and queues (so the bridge keeps up with the broker, which drops
QoS 1 messages beyond `max_queued_messages` for a subscriber that falls behind); each timer
tick sends what arrived since the last one as one Arrow array of readings. A payload that is
not a reading is logged and skipped.

Runs until stopped (Ctrl-C), or, when READINGS is set, until it has forwarded that many
readings per sensor; if they stop coming for IDLE seconds before that, it exits with an error
that says how many arrived.
"""

import json
import logging
import os
import threading
import time

import paho.mqtt.client as mqtt
import pyarrow as pa
from factory import READINGS, SENSOR_TOPICS, SUBSCRIPTION, connect

from doradus import Input, Node

IDLE = float(os.environ.get("IDLE", "10"))
READING = pa.struct(
    [("topic", pa.string()), ("sensor", pa.string()), ("seq", pa.int64()), ("value", pa.float64())]
)
log = logging.getLogger("ingress")
expected = READINGS * len(SENSOR_TOPICS)
lock = threading.Lock()
arrived: list[dict[str, object]] = []
last_arrival = time.monotonic()
subscribed = threading.Event()


def on_subscribe(client: mqtt.Client, userdata: object, mid: int, reasons: object, props: object) -> None:
    subscribed.set()


def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
    global last_arrival
    try:
        reading = json.loads(message.payload)
        row = {
            "topic": message.topic,
            "sensor": str(reading["sensor"]),
            "seq": int(reading["seq"]),
            "value": float(reading["value"]),
        }
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("skipped a payload on %s that is not a reading: %s", message.topic, exc)
        return
    with lock:
        arrived.append(row)
        last_arrival = time.monotonic()


client = connect("ingress")
client.on_subscribe = on_subscribe
client.on_message = on_message
client.subscribe(SUBSCRIPTION, qos=1)
if not subscribed.wait(10):
    raise SystemExit(f"the broker did not confirm the subscription to {SUBSCRIPTION} within 10 s")
node = Node()  # after subscribing: nothing the devices publish once the dataflow runs is missed
forwarded = 0
for event in node:  # a tick every 100 ms; the loop ends on Stop
    if not (isinstance(event, Input) and event.id == "tick"):
        continue
    with lock:
        batch, arrived[:] = list(arrived), []
        idle = time.monotonic() - last_arrival
    if batch:
        node.send_output("reading", pa.array(batch, type=READING))
        forwarded += len(batch)
    if expected and forwarded >= expected:
        break
    if expected and idle > IDLE:
        client.disconnect()
        raise SystemExit(
            f"only {forwarded} of {expected} readings arrived, none for {IDLE:.0f} s: a device stopped "
            "early, or the broker dropped messages (Mosquitto's max_queued_messages per subscriber)"
        )
client.loop_stop()
client.disconnect()
print(f"forwarded {forwarded} readings from {SUBSCRIPTION}")
