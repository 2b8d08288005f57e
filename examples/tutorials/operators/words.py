"""Sends three words, one per tick."""

from doradus import Input, Node

node = Node()
words = ["alpha", "beta", "gamma"]
for event in node:
    if isinstance(event, Input) and words:
        node.send_output("word", [words.pop(0)])
        if not words:
            break
