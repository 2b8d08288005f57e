"""Sends [1, 2, 3] then [5], as the test does."""

from doradus import Input, Node

node = Node()
batches = [([1, 2, 3], 1), ([5], 2)]
for event in node:
    if isinstance(event, Input) and batches:
        values, seq = batches.pop(0)
        node.send_output("numbers", values, {"seq": seq})
        if not batches:
            break
