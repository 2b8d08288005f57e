"""Dataflow → MQTT: publishes every alarm on alarms/factory (QoS 1), for the plant's dashboards."""

from factory import ALARM_TOPIC, connect

from doradus import Input, Node

client = connect("egress")
node = Node()
published = 0
last = None
for event in node:
    if isinstance(event, Input) and event.id == "alarm":
        for alarm in event.value.to_pylist():
            last = client.publish(ALARM_TOPIC, alarm, qos=1)  # in order; acknowledged by the broker
            published += 1
if last is not None:
    last.wait_for_publish()  # every alarm reached the broker before the node ends
client.loop_stop()
client.disconnect()
print(f"published {published} alarms on {ALARM_TOPIC}")
