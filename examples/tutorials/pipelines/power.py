"""Raises every number it gets to --exponent; one script, two nodes (`square`, `cube`)."""

import argparse

from doradus import Input, Node

parser = argparse.ArgumentParser()
parser.add_argument("--exponent", type=int, required=True)
exponent = parser.parse_args().exponent
node = Node()
for event in node:
    if isinstance(event, Input):
        value = event.value[0].as_py()
        node.send_output("result", [value**exponent], event.metadata)  # forward metadata (seq)
