"""Simulated devices: a thermometer and a manometer publishing JSON readings over MQTT (QoS 1).

They know nothing of the dataflow; the node handle only makes them start once the ingress
bridge is subscribed (`Node()` returns when every node of the dataflow is ready).
"""

import json

from factory import READINGS, SENSOR_TOPICS, connect

from doradus import Node

Node()
client = connect("sensors")
sent = None
for seq in range(READINGS):
    temperature = 60.0 + seq % 30  # °C; above 85 four times in every 30 readings
    pressure = 1.0 + (seq % 10) / 100  # bar
    for sensor, value in (("temperature", temperature), ("pressure", pressure)):
        payload = json.dumps({"sensor": sensor, "seq": seq, "value": value})
        sent = client.publish(SENSOR_TOPICS[sensor], payload, qos=1)
    if seq % 50 == 49:  # a device's pace: at most ~100 unacknowledged readings on the way
        sent.wait_for_publish()
if sent is not None:
    sent.wait_for_publish()  # the broker has the last reading (and, in order, every earlier one)
client.loop_stop()
client.disconnect()
print(f"published {READINGS} readings per sensor")
