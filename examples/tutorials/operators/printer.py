"""Prints what the operators produced."""

from doradus import Input, Node

node = Node()
for event in node:
    if isinstance(event, Input):
        print(f"{event.id}: {event.value[0].as_py()}")
