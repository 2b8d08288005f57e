"""What a node does as its process ends: its last statistics, and its network sessions closed.

Example::

    report_at_exit(node)
"""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from doradus._node.node import Node


def report_at_exit(node: Node) -> None:
    """Send the node's final statistics when the process exits, even without ``close()``.

    Also closes a network backend when the main thread ends, before Python joins the
    remaining threads. Holds the node weakly: a node collected earlier is left alone.

    Example::

        report_at_exit(node)   # in Node.__init__, once the node runs
    """
    ref = weakref.ref(node)

    def report() -> None:
        alive = ref()
        if alive is not None:
            alive._backend.drain()  # what its sockets still hold counts as undelivered
            alive._report_statistics()
            # Receivers see the end now, not after the interpreter's teardown (tens of ms) —
            # unless the node was told to stop: its receivers are stopping too, and get their own
            # Stop first rather than an InputClosed from a peer that happened to stop sooner.
            if not alive._channel.stop_asked:
                alive._backend.end_outputs()
            if alive._telemetry is not None:
                alive._telemetry.shutdown()

    def close_network() -> None:
        alive = ref()
        if alive is not None and alive._backend.close_when_main_thread_ends:
            # Network backends hold sessions and threads (some not daemonic) that must end before
            # the interpreter waits for its threads; closing also tells receivers the outputs ended.
            alive._timer_stop.set()
            alive._backend.close()

    atexit.register(report)
    # Runs when the main thread ends, before Python joins the remaining threads (atexit is later).
    register_before_join = getattr(threading, "_register_atexit", None)
    if register_before_join is not None:
        register_before_join(close_network)
    else:
        atexit.register(close_network)
