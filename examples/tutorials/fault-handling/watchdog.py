"""Tells a silent sensor (its input's `input_timeout`) from a live one, and sees it come back."""

from doradus import Input, InputClosed, InputRecovered, Node

node = Node()
for event in node:
    match event:
        case Input(id="reading", value=value):
            print(f"reading {value[0].as_py()}")
        case InputClosed(id="reading"):
            print("sensor silent or gone: holding the last reading")
        case InputRecovered(id="reading"):
            print("sensor back")
