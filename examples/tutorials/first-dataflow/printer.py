"""Prints every number it receives, and a total when the counter is gone."""

from doradus import Input, InputClosed, Node, Stop

node = Node()
total = 0
for event in node:
    match event:
        case Input(id="number", value=value):
            number = value[0].as_py()
            total += number
            print(f"got {number}")
        case InputClosed(id=input_id):
            print(f"input {input_id} closed")
        case Stop(reason=reason):
            print(f"stop ({reason})")
print(f"total {total}")
