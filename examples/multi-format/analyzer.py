"""Reads each Cap'n Proto burst in place and sends its health (RMS and peak) as an Avro record."""

import math

from doradus import Input, Node

node = Node()
for event in node:
    if isinstance(event, Input):
        burst = event.value  # a Cap'n Proto reader over the received bytes: no parse, no copy
        samples = list(burst.samples)
        rms = math.sqrt(sum(s * s for s in samples) / len(samples))
        peak = max(abs(s) for s in samples)
        node.send_output("health", {"machine": burst.machine, "seq": burst.seq, "rms": rms, "peak": peak})
