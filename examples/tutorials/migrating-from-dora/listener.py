"""A dora-rs node that prints what it hears and how the stream ends."""

from dora import Node

node = Node()
for event in node:
    if event["type"] == "INPUT":
        print(f"{event['id']}: {event['value'][0].as_py()}")
    elif event["type"] == "INPUT_CLOSED":
        print(f"closed: {event['id']}")
    elif event["type"] == "STOP":
        print(f"stop: {event['id']}")
