"""What the factory's nodes share: the broker address, the topics and an MQTT client."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

URL = urlsplit(os.environ.get("MQTT_URL", "mqtt://127.0.0.1:1883"))
PREFIX = os.environ.get("TOPIC_PREFIX", "")  # e.g. "site-2/": a namespace on a shared broker
SENSOR_TOPICS = {"temperature": f"{PREFIX}factory/temperature", "pressure": f"{PREFIX}factory/pressure"}
SUBSCRIPTION = f"{PREFIX}factory/+"
ALARM_TOPIC = f"{PREFIX}alarms/factory"
READINGS = int(os.environ.get("READINGS", "1000"))  # per sensor; 0: run until stopped


def connect(name: str) -> mqtt.Client:
    """A connected MQTT client with its network loop running in a background thread."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{PREFIX}{name}-{os.getpid()}")
    try:
        client.connect(URL.hostname or "127.0.0.1", URL.port or 1883)
    except OSError as exc:
        raise SystemExit(
            f"{name}: no MQTT broker at {URL.geturl()} ({exc}): start Mosquitto or set MQTT_URL"
        ) from exc
    client.loop_start()
    return client
