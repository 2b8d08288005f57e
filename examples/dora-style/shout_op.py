"""A dora-rs Python operator."""

import pyarrow as pa
from dora import DoraStatus


class Operator:
    def on_event(self, dora_event, send_output):
        if dora_event["type"] == "INPUT":
            text = dora_event["value"][0].as_py()
            send_output("shout", pa.array([text.upper() + "!"]), dora_event["metadata"])
        return DoraStatus.CONTINUE
