"""A node's counters: messages sent, one-way latencies, errors, and the reports built from them.

The receiving thread counts latencies and errors, senders count what they send (under the
node's send lock), and the control thread reads everything once a second for the ``stats``
report to the daemon. The counters are plain containers that the hot path updates in place
(no call per message); a report reads them without a lock, so its figures may be a message
apart from each other.

Example:
    >>> from doradus._node.inbox import Inbox
    >>> counters = NodeCounters(["image"], ["boxes"])
    >>> counters.sent["boxes"] += 1
    >>> report = counters.report(Inbox({"image": 4}), now=0.0)
    >>> report["outputs"], report["latency_p50_us"]
    ({'boxes': {'sent': 1, 'bytes': 0}}, None)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from doradus._node.inbox import Inbox
from doradus._observability.latency import LATENCY_BOUNDS_NS
from doradus._wire.control import StatsMessage
from doradus._wire.node_reports import InputReport

STATS_INTERVAL = 1.0
"""Seconds between two ``stats`` reports to the daemon."""
LATENCY_WINDOW = 256
"""How many recent one-way latencies the reported p50 is computed over."""


class NodeCounters:
    """What a node counts, per input and per output.

    Attributes:
        latencies: the most recent one-way latencies (ns), any input.
        processing: how long the node's code took with each of the most recent input messages
            (ns): from the event handed out to the node's next request for one.
        histograms: per input, messages per latency bucket (`LATENCY_BOUNDS_NS`, then the rest).
        latency_sums: per input, the sum of its latencies (ns).
        sent: per output, messages sent.
        sent_bytes: per output, payload bytes sent.
        errors: error events delivered (messages that could not be decoded, a lost daemon).

    Example:
        >>> NodeCounters(["a"], ["out"]).histograms["a"][-1]
        0
    """

    __slots__ = ("errors", "histograms", "latencies", "latency_sums", "processing", "sent", "sent_bytes")

    def __init__(self, inputs: Iterable[str], outputs: Iterable[str]) -> None:
        inputs = list(inputs)
        self.latencies: deque[int] = deque(maxlen=LATENCY_WINDOW)
        self.processing: deque[int] = deque(maxlen=LATENCY_WINDOW)
        self.histograms: dict[str, list[int]] = {k: [0] * (len(LATENCY_BOUNDS_NS) + 1) for k in inputs}
        self.latency_sums: dict[str, int] = dict.fromkeys(inputs, 0)
        self.sent: dict[str, int] = dict.fromkeys(outputs, 0)
        self.sent_bytes: dict[str, int] = dict.fromkeys(self.sent, 0)
        self.errors = 0

    def report(self, inbox: Inbox, now: float | None = None) -> StatsMessage:
        """The ``stats`` message: per-input queues and latencies, per-output counts.

        Args:
            inbox: the node's inbox (received, dropped and queued per input).
            now: the report's time (seconds since the epoch; default now).

        Example:
            >>> counters = NodeCounters(["a"], [])
            >>> counters.latencies.append(40_000); counters.histograms["a"][1] += 1
            >>> report = counters.report(Inbox({"a": 1}))
            >>> report["latency_p50_us"], report["inputs"]["a"]["latency_count"]
            (40.0, 1)
        """
        samples = sorted(self.latencies)
        spent = sorted(self.processing)
        delivered = inbox.delivered
        inputs: dict[str, InputReport] = {
            k: {
                "received": inbox.received[k],
                "delivered": delivered[k],
                "dropped": inbox.dropped[k],
                "shed": inbox.shed[k],
                "backpressure_timeouts": inbox.timed_out[k],
                "queued": inbox.depth(k),
                "latency_buckets": list(buckets),
                "latency_sum_us": self.latency_sums[k] / 1000,
                "latency_count": sum(buckets),
            }
            for k, buckets in self.histograms.items()
        }
        return {
            "op": "stats",
            "time": time.time() if now is None else now,
            "inputs": inputs,
            # the items copied first: senders go on counting while the report is built
            "outputs": {k: {"sent": n, "bytes": self.sent_bytes[k]} for k, n in list(self.sent.items())},
            "latency_p50_us": samples[len(samples) // 2] / 1000 if samples else None,
            "latency_samples": len(samples),
            "processing_p50_us": spent[len(spent) // 2] / 1000 if spent else None,
            "errors": self.errors,
        }

    def snapshot(self, inbox: Inbox) -> dict[str, Any]:
        """What `Node.statistics` shows of them: per input and per output counters.

        Example:
            >>> NodeCounters(["a"], ["out"]).snapshot(Inbox({"a": 1}))["inputs"]["a"]
            {'received': 0, 'delivered': 0, 'dropped': 0, 'backpressure_timeouts': 0, 'queued': 0}
        """
        delivered = inbox.delivered
        return {
            "inputs": {
                k: {
                    "received": inbox.received[k],
                    "delivered": delivered[k],
                    "dropped": inbox.dropped[k],
                    "backpressure_timeouts": inbox.timed_out[k],
                    "queued": inbox.depth(k),
                }
                for k in self.histograms
            },
            "outputs": {k: {"sent": self.sent[k], "bytes": self.sent_bytes[k]} for k in self.sent},
        }
