"""An operator with state: numbers each word it sees."""

import pyarrow as pa
from dora import DoraStatus


class Operator:
    def __init__(self):
        self.seen = 0

    def on_event(self, dora_event, send_output):
        if dora_event["type"] == "INPUT":
            self.seen += 1
            send_output("counted", pa.array([f"{self.seen}: {dora_event['value'][0].as_py()}"]))
        return DoraStatus.CONTINUE
