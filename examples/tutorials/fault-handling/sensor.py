"""Sends 3 readings, goes silent for 1.5 s (three of the watchdog's timeouts), then sends 2 more."""

import time

from doradus import Node

node = Node()
for i in range(5):
    if i == 3:
        time.sleep(1.5)
    node.send_output("reading", [i])
