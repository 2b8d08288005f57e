"""Sends 20 payloads of 64 KiB; the node code does not know which backend carries them."""

import numpy as np

from doradus import Input, Node

node = Node()
sent = 0
for event in node:
    if isinstance(event, Input):
        sent += 1
        node.send_output("payload", np.full(64 * 1024, sent % 256, dtype=np.uint8))
        if sent == 20:
            break
