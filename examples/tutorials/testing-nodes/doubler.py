"""Doubles every number; says `done` when its input closes.

The logic is a function of its node, so a test can hand it a MockNode.
"""

from doradus import Input, InputClosed, Node


def run(node):
    for event in node:
        if isinstance(event, Input) and event.id == "numbers":
            doubled = [2 * v for v in event.value.to_pylist()]
            node.send_output("doubled", doubled, {"seq": event.metadata.get("seq", 0)})
        elif isinstance(event, InputClosed):
            node.send_output("done", [True])


if __name__ == "__main__":
    run(Node())
