"""Prints the first results, notices the worker's restart, and sums up when the worker is done."""

from doradus import Input, InputClosed, Node, NodeFailed, NodeRestarted

node = Node()
results = []
for event in node:
    match event:
        case Input(id="result", value=value):
            results.append(value[0].as_py())
            if len(results) <= 2:
                print(f"result {results[-1]}")
        case NodeRestarted(node=sender):
            print(f"{sender} restarted: its next results follow")
        case NodeFailed(node=sender, error=error):
            print(f"{sender} failed for good ({error})")
        case InputClosed(id="result"):
            print(f"worker done after {len(results)} results, the last {results[-1]}")
