"""The ends of shm links whose other node restarts or ends: held inputs, missed messages, old sockets.

`LinkEnds` is the part of `doradus.backends._shm.ShmBackend` that deals with a linked node
going away and, perhaps, coming back:

- an in link's end closes the inputs it feeds, unless its sender is restarting (the link is
  ``superseded``: a new one follows) or may be restarted by its ``restart_policy`` (the link is
  ``held``: the end waits for the daemon's word, `sender_ended`);
- while a receiver restarts (``peer_restarting``), what the node would send it is dropped and
  counted per receiver (`restart_drops`), until its new link opens (`peer_back`);
- the sockets of links that ended are closed where no other thread can still use their
  descriptor numbers: in links from the node's own thread once the reactor has forgotten them
  (`close_ended_in`, from `ShmBackend.idle`), out links under the node's send lock
  (`close_ended_out`, from `ShmBackend.send`). Without this each restart would leave one
  descriptor per link open in every peer until it ends.

Example::

    backend.ends.peer_restarting("detector")   # what goes to it is now counted, not sent
    backend.ends.restart_drops                  # {'detector': 3}
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from doradus.backends._shm import ShmBackend
    from doradus.backends._shm_links import InLink, OutLink


class LinkEnds:
    """Ends of one shm backend's links (see the module documentation).

    Thread safety: `link_closed` comes from a reader thread, `sender_ended` and
    `peer_restarting` from the node's control thread, `close_ended_in` from the node's thread,
    `count_down` and `close_ended_out` under the node's send lock.
    """

    def __init__(self, backend: ShmBackend) -> None:
        self._backend = backend
        self.down: dict[bytes, list[str]] = {}
        """While a receiver restarts: output → the peers it does not reach."""
        self.restart_drops: dict[str, int] = {}
        """Receiver → messages not sent to it while it restarted."""
        self.ended_out: list[OutLink] = []
        """Out links whose receiver ended (the reactor has forgotten them), to close at the next send."""
        self._held_lock = threading.Lock()
        """Orders the end of a held link (a reader thread) with the daemon's word on it."""

    def link_closed(self, link: InLink) -> None:
        """An in link ended: its inputs close, unless its sender restarts or may be restarted."""
        with self._held_lock:
            if link.superseded:  # a restarting sender's old link ends; its new one follows
                return
            if link.held:  # its sender may be restarted: the daemon says (`sender_ended`)
                link.awaiting = True
                return
        self._backend.receiver.closed(link.inputs)

    def sender_ended(self, peer: str) -> None:
        """``peer`` will not be restarted: its held links' end is the end of their inputs."""
        ended = []
        with self._held_lock:
            for inbound in self._backend._reactor.in_links:
                if inbound.peer != peer or inbound.superseded or not inbound.held:
                    continue
                inbound.held = False  # an end still to come closes its inputs (`link_closed`)
                if inbound.awaiting:
                    inbound.awaiting = False
                    ended.append(inbound)
        for inbound in ended:
            self._backend.receiver.closed(inbound.inputs)

    def peer_restarting(self, peer: str) -> None:
        """``peer`` restarts: send it nothing (counted) until its new link opens; its old end is no end.

        The old sending end stays watched: the releases of the old process come back on it,
        and when it closes the segments it still held are reclaimed (`Reactor`).
        """
        backend = self._backend
        with self._held_lock:
            for inbound in backend._reactor.in_links:
                if inbound.peer == peer:
                    inbound.superseded = True
                    inbound.awaiting = False  # ended before the notice: no word will come for it
        for link in backend._out_links:
            if link.peer == peer:  # alive, or dead already (a crash): counted from now on
                link.held = True
                self.mark_down(link)
        self.restart_drops.setdefault(peer, 0)

    def mark_down(self, link: OutLink) -> None:
        """Send nothing more on ``link``; if its receiver may come back, count what it misses.

        From a send that failed, the reactor seeing the receiver's end, or ``peer_restarting``.
        A receiver with a ``restart_policy`` (``held``) is counted from its end until its new
        link opens (`peer_back`); for one that does not come back, until the run ends.
        """
        link.alive = False
        if link.gate is not None:
            link.gate.close()
        for output in link.outputs:
            routed = self._backend._routes.get(output.encode())
            if routed is not None and link in routed:
                routed.remove(link)
            if link.held:
                peers = self.down.setdefault(output.encode(), [])
                if link.peer not in peers:
                    peers.append(link.peer)
        if link.held:
            self.restart_drops.setdefault(link.peer, 0)

    def peer_back(self, peer: str) -> None:
        """A new link to ``peer`` opens: its messages are sent again, no longer counted as missed."""
        for output in list(self.down):
            peers = [p for p in self.down[output] if p != peer]
            if peers:
                self.down[output] = peers
            else:
                del self.down[output]

    def count_down(self, output: bytes) -> None:
        """One message of ``output`` not sent to the receivers restarting now."""
        for peer in self.down.get(output, ()):
            self.restart_drops[peer] += 1

    def close_ended_in(self) -> None:
        """Close the sockets of in links that ended (the node's thread: no reader uses them now).

        Its mappings of the sender's segments are dropped too: each stays mapped while a value
        over it lives. A held link waiting for the daemon's word (`sender_ended`) keeps its
        record, without its socket.
        """
        backend = self._backend
        keep = []
        for link in backend._reactor.in_links:
            if not (link.closed and link.unwatched):
                keep.append(link)
                continue
            fd = link.sock.fileno()
            if fd >= 0:
                if backend._in_by_fd.pop(fd, None) is not None:
                    try:
                        backend._epoll.unregister(fd)
                    except (OSError, ValueError):
                        pass
                backend.flow.forget_in(link)
                link.sock.close()
                # Its segments go once no value uses them (a value's buffer holds its mapping).
                link.mappings.clear()
            if link.awaiting and not link.superseded:
                keep.append(link)
        backend._reactor.in_links = keep

    def close_ended_out(self) -> None:
        """Close the sockets of out links whose receiver ended (the caller holds the send lock)."""
        backend = self._backend
        ended, self.ended_out = self.ended_out, []
        for link in ended:
            link.alive = False
            for routed in backend._routes.values():
                if link in routed:
                    routed.remove(link)
            if link in backend._out_links:
                backend._out_links.remove(link)
            link.sock.close()
