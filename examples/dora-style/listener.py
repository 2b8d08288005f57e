"""Prints what it hears; `import dora` works as with dora-rs."""

import dora

node = dora.Node()
for event in node:
    if event["type"] == "INPUT":
        print(f"{event['id']}: {event['value'][0].as_py()}")
    elif event["type"] == "STOP":
        print(f"stop: {event['id']}")
