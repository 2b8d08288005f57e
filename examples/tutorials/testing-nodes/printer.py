"""Prints what the doubler sent."""

from doradus import Input, Node

node = Node()
for event in node:
    if isinstance(event, Input):
        print(f"{event.id}: {event.value.to_pylist()}")
