"""An operator: a class named Operator whose on_event gets each event and a send function."""

import pyarrow as pa
from dora import DoraStatus


class Operator:
    def on_event(self, dora_event, send_output):
        if dora_event["type"] == "INPUT":
            word = dora_event["value"][0].as_py()
            send_output("word", pa.array([word.upper()]), dora_event["metadata"])
        elif dora_event["type"] == "INPUT_CLOSED":
            return DoraStatus.STOP  # no more words: this operator is done
        return DoraStatus.CONTINUE
