"""Checks the numbered payloads it receives; writes its progress and, at the end, its figures.

Per source epoch the sequence numbers must increase; a jump counts the numbers skipped
(`missing`), a step back counts as `out_of_order`. SOAK_PROGRESS gets the counts every
SOAK_PROGRESS_S seconds (0.25), SOAK_OUT the same at the end. SOAK_WORK_S: seconds of "work"
per message (a slow consumer), which also reads every page of the payload.
"""

from __future__ import annotations

import os
import time

from soaklib import Every, read_stamp, touch_pages, write_json

from doradus import Input, Node

node = Node()
work = float(os.environ.get("SOAK_WORK_S", 0))
progress_path = os.environ.get("SOAK_PROGRESS")
progress = Every(float(os.environ.get("SOAK_PROGRESS_S", 0.25)))
received = missing = out_of_order = 0
first: dict[int, int] = {}  # epoch -> first sequence number seen
last: dict[int, int] = {}  # epoch -> last sequence number seen
epoch_now = -1
started = time.monotonic()


def figures() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "restarts": node.restart_count(),
        "received": received,
        "missing": missing,
        "out_of_order": out_of_order,
        "first": {str(k): v for k, v in first.items()},
        "last": {str(k): v for k, v in last.items()},
        "seconds": time.monotonic() - started,
    }


for event in node:
    if isinstance(event, Input):
        epoch, seq = read_stamp(event.value)
        received += 1
        before = last.get(epoch)
        if before is None:
            first[epoch] = seq
        elif seq > before + 1:
            missing += seq - before - 1
        elif seq <= before:
            out_of_order += 1
        last[epoch] = seq
        if work:
            touch_pages(event.value)
            time.sleep(work)
    if progress_path and progress.due():
        write_json(progress_path, figures())
write_json(progress_path, figures())
write_json(os.environ.get("SOAK_OUT"), figures())
