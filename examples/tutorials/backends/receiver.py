"""Counts what arrived."""

from doradus import Input, Node

node = Node()
received = sum(1 for event in node if isinstance(event, Input))
print(f"received {received} payloads")
