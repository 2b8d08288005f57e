"""Sends three small images."""

import numpy as np

from doradus import Input, Node

node = Node()
sent = 0
for event in node:
    if isinstance(event, Input):
        sent += 1
        node.send_output("image", np.full(4096, sent, dtype=np.uint8), {"seq": sent})
        if sent == 3:
            break
