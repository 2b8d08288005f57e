"""Sends job numbers 1 to 5, one per tick."""

from doradus import Input, Node

node = Node()
job = 0
for event in node:
    if isinstance(event, Input):
        job += 1
        node.send_output("job", [job])
        if job == 5:
            break
