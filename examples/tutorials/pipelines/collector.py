"""Joins the two streams by `seq` and prints each pair once both halves are in."""

from doradus import Input, InputClosed, Node

node = Node()
pending: dict[int, dict[str, int]] = {}
for event in node:
    match event:
        case Input(id="squares" | "cubes", value=value, metadata=metadata):
            pair = pending.setdefault(metadata["seq"], {})
            pair[event.id] = value[0].as_py()
            if len(pair) == 2:
                print(f"seq {metadata['seq']}: square {pair['squares']}, cube {pair['cubes']}")
                del pending[metadata["seq"]]
        case InputClosed(id=input_id):
            print(f"{input_id} closed")
print("collector done")
