"""Sends the numbers 1 to 5, one per tick, then exits (which closes its receivers' inputs)."""

from doradus import Input, Node

node = Node()
number = 0
for event in node:
    if isinstance(event, Input) and event.id == "tick":
        number += 1
        node.send_output("number", [number], {"seq": number})
        if number == 5:
            break
