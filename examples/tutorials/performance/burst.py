"""Sends 300 messages of 256 KiB back to back, each built in shared memory (no copy)."""

from doradus import Node

node = Node()
for seq in range(300):
    buffer = node.allocate(256 * 1024)  # zero-copy: receivers map this memory read-only
    buffer[:8] = seq % 256
    node.send_output("sample", buffer, {"seq": seq})
print("burst sent")
