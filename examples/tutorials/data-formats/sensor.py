"""Sends an Avro record (a dict matching the schema) and an Arrow array, three times."""

from doradus import Input, Node

node = Node()
seq = 0
for event in node:
    if isinstance(event, Input):
        seq += 1
        node.send_output("reading", {"sensor": "t1", "celsius": 20.0 + seq / 2, "seq": seq})
        node.send_output("raw", [0.5 * seq, 1.5 * seq])
        if seq == 3:
            break
