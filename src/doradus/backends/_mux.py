"""One node, several backends: each of its links travels on the backend the daemon chose for it.

`MultiBackend` groups the node's links by backend, opens one instance of
each, and fans calls out: a message goes to every backend that has a
receiver for its output. The node's thread waits on the sockets of the
backend whose links are socket pairs (`Backend.uses_socket_pairs`, the
fast path) when there is one, otherwise on its wake-up descriptor alone
while the other backends deliver from their own threads.

Example::

    backend = MultiBackend("camera", receiver, {"shm": ShmBackend, "redis": RedisBackend})
    backend.open(links, fds)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from doradus.backends._base import Backend, BackendStatistics, LinkSpec, Outgoing, Receiver

if TYPE_CHECKING:
    import numpy as np


class MultiBackend(Backend):
    """Several backends behind one; see the module documentation."""

    name = "mux"

    def __init__(self, node_id: str, receiver: Receiver, classes: dict[str, type[Backend]]) -> None:
        super().__init__(node_id, receiver)
        self.parts: dict[str, Backend] = {name: cls(node_id, receiver) for name, cls in classes.items()}
        self._primary = next((b for b in self.parts.values() if b.uses_socket_pairs), None)
        self._opened: set[str] = set()
        """Backends opened once: a later `open` (a restarted peer's new links) reaches only
        those it brings links for, so the others' transports are not opened again."""

    def open(self, links: Sequence[LinkSpec], fds: Sequence[int]) -> None:
        """Hand each backend its links (``options["backend"]``), and its descriptors in link order.

        ``fds`` hold one descriptor per link of a backend that `uses_socket_pairs`, in link order.
        """
        grouped: dict[str, list[LinkSpec]] = {name: [] for name in self.parts}
        grouped_fds: dict[str, list[int]] = {name: [] for name in self.parts}
        remaining = iter(fds)
        for spec in links:
            name = str(spec.options["backend"])
            grouped[name].append(spec)
            if self.parts[name].uses_socket_pairs:
                grouped_fds[name].append(next(remaining))
        for name, backend in self.parts.items():
            if grouped[name] or name not in self._opened:
                backend.open(grouped[name], grouped_fds[name])
                self._opened.add(name)

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
        """What the socket-pair backend gives (shared memory for ``shm``), else ordinary memory."""
        if self._primary is not None:
            return self._primary.allocate(nbytes)
        return super().allocate(nbytes)

    def idle(self) -> None:
        """Housekeeping of every backend."""
        for backend in self.parts.values():
            backend.idle()

    def drain(self) -> None:
        """Every backend reads what its links hold."""
        for backend in self.parts.values():
            backend.drain()

    def wait(self, timeout: float, wake_fd: int) -> None:
        """Wait on the socket-pair links when there are some (other backends wake ``wake_fd``)."""
        if self._primary is not None:
            self._primary.wait(timeout, wake_fd)
        else:
            super().wait(timeout, wake_fd)

    def taken(self, input_id: str) -> None:
        """A message of a backpressure input was taken: the backend whose link feeds it tells the sender."""
        for backend in self.parts.values():
            backend.taken(input_id)

    def hold_senders(self, inputs: Collection[str], held: bool) -> None:
        """The node was paused or resumed: every backend tells the senders of ``inputs`` it links."""
        for backend in self.parts.values():
            backend.hold_senders(inputs, held)

    def sender_ended(self, peer: str) -> None:
        """A sender ended: every backend hears it (those that see it themselves ignore it).

        Example::

            backend.sender_ended("camera")
        """
        for backend in self.parts.values():
            backend.sender_ended(peer)

    def peer_restarting(self, peer: str) -> None:
        """A linked node is restarting: every backend hears it.

        Example::

            backend.peer_restarting("detector")
        """
        for backend in self.parts.values():
            backend.peer_restarting(peer)

    def restart_drops(self) -> dict[str, int]:
        """What every backend did not send to restarting peers, summed per peer.

        Example::

            backend.restart_drops()   # {'detector': 3}
        """
        total: dict[str, int] = {}
        for backend in self.parts.values():
            for peer, count in backend.restart_drops().items():
                total[peer] = total.get(peer, 0) + count
        return total
