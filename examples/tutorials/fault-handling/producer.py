"""Sends job numbers 1 to 80, one per tick (4 s at 50 ms), then exits."""

from doradus import Input, Node

node = Node()
job = 0
for event in node:
    if isinstance(event, Input):
        job += 1
        node.send_output("job", [job])
        if job == 80:
            break
