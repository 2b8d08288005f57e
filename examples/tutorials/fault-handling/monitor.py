"""Reads results; when the worker is gone its input closes, and the monitor decides what to do."""

from doradus import Input, InputClosed, Node

node = Node()
for event in node:
    match event:
        case Input(id="result", value=value):
            print(f"result {value[0].as_py()}")
        case InputClosed(id="result"):
            print("worker gone: saving what I have and exiting cleanly")
