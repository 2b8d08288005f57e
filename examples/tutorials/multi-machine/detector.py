"""Receives the images from the other machine."""

from doradus import Input, Node

node = Node()
for event in node:
    if isinstance(event, Input):
        print(f"image {event.metadata['seq']}: {len(event.value)} bytes")
