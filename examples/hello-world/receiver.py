"""Prints every greeting until the sender is gone."""

from doradus import Input, InputClosed, Node

node = Node()
received = 0
for event in node:
    match event:
        case Input(id="greeting", value=value):
            received += 1
            print(f"received: {value[0].as_py()}")
        case InputClosed(id=input_id):
            print(f"input {input_id!r} closed")
print(f"received {received} greetings")
