"""Backpressure on socket-pair links (`doradus.backends._flow` for the ``shm`` backend).

Flow messages ride the link's own socket pair, beside data and releases: ``CREDIT`` and
``HOLD`` go back from receiver to sender (the sender's reactor reads them with the releases),
``SKIP`` goes forward (the receiver's reader counts it). They are sent without blocking: a
peer that does not read them (the daemon's stdout relay, a frozen process) costs nothing.

Example::

    flow = ShmFlow("camera", receiver)
    link.gate = flow.gate_for(spec)          # an out link into backpressure inputs
    links = flow.admit(links, b"image")      # in send(): the links with room
"""

from __future__ import annotations

import socket
from collections.abc import Collection
from typing import TYPE_CHECKING

from doradus.backends._flow import (
    KIND_CREDIT,
    KIND_HOLD,
    KIND_SHED,
    KIND_SKIP,
    SendGate,
    admit_all,
    decode_flow,
    encode_flow,
    gate_statistics,
    gate_takes,
)

if TYPE_CHECKING:
    from doradus.backends._base import LinkSpec, Receiver
    from doradus.backends._shm_links import InLink, OutLink


class ShmFlow:
    """The backpressure side of one ``shm`` backend: gates of its out links, credits of its inputs.

    Example:
        >>> from doradus.testing import CollectingReceiver
        >>> ShmFlow("a", CollectingReceiver()).gated
        False
    """

    def __init__(self, node_id: str, receiver: Receiver) -> None:
        self._node_id = node_id
        self._receiver = receiver
        self._gates: list[SendGate] = []
        self.gated = False
        """Some out link waits for room at its receiver: `admit` must be called."""
        self._feeding: dict[str, InLink] = {}
        """Input id → the newest link that feeds it (a restarted sender's replaces the old)."""
        self._credits: dict[str, bytes] = {}

    def gate_for(self, spec: LinkSpec) -> SendGate | None:
        """The gate of a new out link, if it feeds backpressure inputs."""
        if not spec.backpressure:
            return None
        gate = SendGate(self._node_id, spec.peer, spec.backpressure)
        self._gates.append(gate)
        self.gated = True
        return gate

    def add_in(self, link: InLink) -> None:
        """A new in link: it feeds its inputs from now on."""
        for input_id in link.inputs:
            self._feeding[input_id] = link

    def forget_in(self, link: InLink) -> None:
        """An in link that ended and is closed: it feeds nothing any more."""
        for input_id in link.inputs:
            if self._feeding.get(input_id) is link:
                del self._feeding[input_id]

    def admit(self, links: list[OutLink], output: bytes) -> list[OutLink]:
        """The links of ``output`` to send to, once each gated one has room; a timed-out one is told."""
        sent, skipped = admit_all(links, output)
        for link in skipped:
            _send(link.sock, encode_flow(KIND_SKIP, 0, output.decode()))
        return sent

    def taken(self, input_id: str) -> None:
        """The node took a message of ``input_id``: a credit to its sender."""
        link = self._feeding.get(input_id)
        if link is None or link.closed:
            return
        credit = self._credits.get(input_id)
        if credit is None:
            credit = self._credits[input_id] = encode_flow(KIND_CREDIT, 1, input_id)
        _send(link.sock, credit)

    def hold_senders(self, inputs: Collection[str], held: bool) -> None:
        """Tell the senders of ``inputs`` that the node is paused (``held``) or resumed."""
        for input_id in inputs:
            link = self._feeding.get(input_id)
            if link is not None and not link.closed:
                _send(link.sock, encode_flow(KIND_HOLD, int(held), input_id))

    def from_receiver(self, link: OutLink, data: bytes) -> None:
        """A flow message came back on an out link (the reactor's thread): credit or hold its gate."""
        gate_takes(link.gate, data)

    def from_sender(self, link: InLink, data: bytes) -> None:
        """A flow message on an in link: a ``SKIP`` or ``SHED`` is counted on the inputs its output feeds.

        A ``SKIP``'s value, when not 0, is how many messages it stands for (a tap tells several
        at once: `doradus.backends._shm_taps`); a ``SHED``'s is always the count
        (`doradus.backends._shm_holds`), counted as dropped.

        Raises:
            DecodeError: it is malformed (the reader counts it).
        """
        kind, value, output = decode_flow(data)
        inputs = link.routes.get(output.encode())
        if kind == KIND_SKIP and inputs:
            for _ in range(max(1, value)):
                self._receiver.timed_out(inputs)
        elif kind == KIND_SHED and inputs:
            self._receiver.dropped(inputs, value)

    def statistics(self) -> dict[str, int]:
        """Messages not sent after a timed-out wait, per ``receiver/input``."""
        return gate_statistics(self._gates)


def _send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.send(data, socket.MSG_DONTWAIT)
    except OSError:  # a full buffer (a peer that does not read) or a closed link: nothing to wait for
        pass
