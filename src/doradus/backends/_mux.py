"""One node, several backends: each of its links travels on the backend the daemon chose for it.

`MultiBackend` groups the node's links by backend, opens one instance of
each, and fans calls out: a message goes to every backend that has a
receiver for its output. The node's thread waits on the shared-memory
backend's sockets when there is one (its fast path), otherwise on its wake-up
descriptor alone while the network backends deliver from their own threads.

Example::

    backend = MultiBackend("camera", receiver, {"shm": ShmBackend, "redis": RedisBackend})
    backend.open(links, fds)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from doradus.backends._base import Backend, BackendStatistics, LinkSpec, Outgoing, Receiver


class MultiBackend(Backend):
    """Several backends behind one; see the module documentation."""

    name = "mux"

    def __init__(self, node_id: str, receiver: Receiver, classes: dict[str, type[Backend]]) -> None:
        super().__init__(node_id, receiver)
        self.parts: dict[str, Backend] = {name: cls(node_id, receiver) for name, cls in classes.items()}
        self._primary = self.parts.get("shm")

    def open(self, links: Sequence[LinkSpec], fds: Sequence[int]) -> None:
        """Hand each backend its links; descriptors go, in order, with the ``shm`` links."""
        grouped: dict[str, list[LinkSpec]] = {name: [] for name in self.parts}
        for spec in links:
            grouped[str(spec.options.get("backend", "shm"))].append(spec)
        for name, backend in self.parts.items():
            backend.open(grouped[name], list(fds) if name == "shm" else [])

    def start(self) -> None:
        """Start every backend."""
        for backend in self.parts.values():
            backend.start()

    def send(self, message: Outgoing) -> int:
        """Send on every backend; the receivers reached, summed."""
        return sum(backend.send(message) for backend in self.parts.values())

    def close(self) -> None:
        """Close every backend (each close runs even if another failed)."""
        for backend in self.parts.values():
            try:
                backend.close()
            except Exception:
                pass

    def statistics(self) -> BackendStatistics:
        """Counters summed over the backends, each backend's own under ``details``."""
        stats = [backend.statistics() for backend in self.parts.values()]
        return BackendStatistics(
            "+".join(self.parts),
            sum(s.messages_sent for s in stats),
            sum(s.bytes_sent for s in stats),
            sum(s.messages_received for s in stats),
            sum(s.send_failures for s in stats),
            {s.backend: s for s in stats},
        )

    def allocate(self, nbytes: int) -> np.ndarray:
        """Shared memory when the node has ``shm`` links, else ordinary memory."""
        if self._primary is not None:
            return self._primary.allocate(nbytes)
        return super().allocate(nbytes)

    def idle(self) -> None:
        """Housekeeping of every backend."""
        for backend in self.parts.values():
            backend.idle()

    def wait(self, timeout: float, wake_fd: int) -> None:
        """Wait on the shared-memory links when there are some (other backends wake ``wake_fd``)."""
        if self._primary is not None:
            self._primary.wait(timeout, wake_fd)
        else:
            super().wait(timeout, wake_fd)

    def peer_gone(self, peer: str) -> None:
        """A sender ended: backends that cannot see it themselves close its inputs.

        Example::

            backend.peer_gone("camera")
        """
        for backend in self.parts.values():
            gone: Any = getattr(backend, "sender_ended", None) or getattr(backend, "peer_gone", None)
            if gone is not None:
                gone(peer)
