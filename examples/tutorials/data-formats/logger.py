"""Each input gets its format's natural value; to_python() is the same call for every format."""

from doradus import Input, Node

node = Node()
for event in node:
    if isinstance(event, Input):
        print(f"{event.id} ({event.data_format}): {event.to_python()}")
