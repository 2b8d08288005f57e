"""Counts ticks until stopped."""

from doradus import Input, Node

node = Node()
count = 0
for event in node:
    if isinstance(event, Input):
        count += 1
        node.send_output("count", [count])
