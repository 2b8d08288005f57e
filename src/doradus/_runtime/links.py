"""How a run's nodes are wired: one link per (sender, receiver), on the backend its hooks choose.

`LinkWiring.wire` creates, before any node starts, the links of the nodes this daemon runs:
a Unix socket pair for a backend that `uses_socket_pairs` (both nodes here), else the
options of a network link (`Backend.link_options`) or, across machines, those the
coordinator gathered (a listening address, or a machine's router). Each node gets its links
(`LinkConfig`) when it registers. A ``send_stdout_as`` output read here gets a link of its
own whose sending end the daemon holds (`doradus._runtime.stdout_relay`).

The functions below answer, for a whole dataflow placed on machines, what a machine daemon
must prepare before a multi-machine start (`inbound_remote`, `router_backends_across`,
`free_port`).

Example::

    wiring = LinkWiring(state, placement={}, remote={})
    wiring.wire(on_relay_error=lambda node_id, message: print(node_id, message))
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from doradus._dataflow.communication import edge_backend
from doradus._dataflow.model import Dataflow, NodeSource, NodeSpec
from doradus._runtime.config import backpressure_windows
from doradus._runtime.state import RunState
from doradus._wire.node_config import LinkConfig

LINK_BUFFER = 4 * 1024 * 1024
"""Send buffer asked for each socket-pair end (the kernel may give less)."""

StdoutEnds = dict[str, list[tuple[str, socket.socket]]]
"""Node id → (reader node id, sending end) of each link carrying its stdout lines."""


@dataclass(eq=False)
class Link:
    """The link between a sender node and a receiver node: which outputs go to which inputs."""

    sender: str
    receiver: str
    routes: dict[str, list[str]] = field(default_factory=dict)
    """Sender output id → receiver input ids."""


class LinkWiring:
    """The links of one run's nodes on this machine, and the ports its network links listen on.

    Args:
        state: the run.
        placement: node id → machine, for a run across machines (empty: every node here).
        remote: what the coordinator gathered from every daemon: ``listen``
            (``"<receiver>|<backend>"`` → ``host:port``) and ``router`` (see
            `Backend.machine_router`).
    """

    def __init__(self, state: RunState, placement: Mapping[str, str], remote: Mapping[str, Any]) -> None:
        self._state = state
        self.placement = placement
        self.remote = remote
        self._listen: dict[tuple[str, str], int] = {}
        # The run's link secret (the coordinator's, shared by every machine of the run): a
        # sender proves with it that it belongs to the run (``link_key``, e.g. the tcp greeting).
        self._link_key = str(remote.get("link_key") or secrets.token_hex(16))

    def wire(self, on_relay_error: Callable[[str, str], None]) -> None:
        """Create every link of the nodes here, and the relays of stdout lines read here.

        Args:
            on_relay_error: called with (node id, message) when a stdout line cannot be sent.
        """
        stdout_ends: StdoutEnds = {}
        for link in _links_of(self._state.dataflow).values():
            self._split_stdout(link, stdout_ends)
            self._wire_link(link)
        self._open_relays(stdout_ends, on_relay_error)

    def _wire_link(self, link: Link) -> None:
        """Give both ends of one link their `LinkConfig` (and socket-pair ends), if one runs here."""
        from doradus.backends import backend_class

        state = self._state
        here = (link.sender in state.nodes, link.receiver in state.nodes)
        if not any(here) or not link.routes:
            return
        crossing = not all(here)
        backend = link_backend(state.dataflow, state.specs[link.sender], remote=crossing)
        out: LinkConfig = {
            "peer": link.receiver,
            "dir": "out",
            "outputs": sorted(link.routes),
            "backend": backend,
        }
        inbound: LinkConfig = {
            "peer": link.sender,
            "dir": "in",
            "routes": link.routes,
            "backend": backend,
        }
        if link.sender in state.held:
            inbound["held"] = True
        if link.receiver in state.held:
            out["held"] = True
        windows = backpressure_windows(state.specs[link.receiver], link.routes, backend)
        if windows:
            out["backpressure"] = windows
        state.edge_backends.update({(link.sender, o): backend for o in link.routes})
        if crossing:
            out_options, in_options = self._remote_options(backend, link.receiver)
            if here[0]:
                state.nodes[link.sender].links.append((_with_options(out, out_options), None))
            else:
                state.nodes[link.receiver].links.append((_with_options(inbound, in_options), None))
            return
        if backend_class(backend).uses_socket_pairs:
            if limit := state.specs[link.sender].shared_memory_pool_size:
                out["hold_limit"] = limit
            a, b = _socket_pair()
            state.nodes[link.sender].links.append((out, a))
            state.nodes[link.receiver].links.append((inbound, b))
            return
        out_options, in_options = self._network_options(backend, link.receiver)
        state.nodes[link.sender].links.append((_with_options(out, out_options), None))
        state.nodes[link.receiver].links.append((_with_options(inbound, in_options), None))

    def _split_stdout(self, link: Link, ends: StdoutEnds) -> None:
        """Take a stdout output's routes off a link between two local nodes onto a link of its own.

        The daemon holds that link's sending end (see `doradus._runtime.stdout_relay`): it is a
        link of the relay's own backend (socket pairs) whatever the node's backend, as the daemon
        and the reader share this machine. Readers on other machines keep the node's own link
        (see `NOT_APPLIED`).
        """
        state = self._state
        output = state.specs[link.sender].send_stdout_as
        if not (output in link.routes and link.receiver in state.nodes and state.relays_stdout(link.sender)):
            return
        from doradus._runtime.stdout_relay import StdoutRelay  # pyarrow, only for runs that need it

        a, b = _socket_pair()
        routes = {output: link.routes.pop(output)}
        backend = StdoutRelay.backend.name
        inbound: LinkConfig = {"peer": link.sender, "dir": "in", "routes": routes, "backend": backend}
        state.nodes[link.receiver].links.append((inbound, b))
        ends.setdefault(link.sender, []).append((link.receiver, a))
        state.edge_backends[(link.sender, output)] = backend

    def _open_relays(self, ends: StdoutEnds, on_error: Callable[[str, str], None]) -> None:
        if not ends:
            return
        from doradus._runtime.stdout_relay import StdoutRelay  # pyarrow, only for runs that need it

        for node_id, node_ends in ends.items():
            output = self._state.specs[node_id].send_stdout_as
            assert output is not None

            def failed(message: str, node_id: str = node_id) -> None:
                on_error(node_id, message)

            self._state.relays[node_id] = StdoutRelay(node_id, output, node_ends, on_error=failed)

    def _remote_options(self, backend: str, receiver: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Options of a link crossing machines, from the endpoints the coordinator gathered.

        A backend with a `Backend.machine_router` reaches this machine's router (routers of the
        run's machines are connected to each other); others use the address the receiver's
        machine announced (`Backend.link_options`).
        """
        from doradus.backends import backend_class

        common = self._common_options(backend)
        declared = backend_class(backend)
        if declared.machine_router:
            return declared.router_link_options(common, str(self.remote.get("router") or ""))
        address = str((self.remote.get("listen") or {}).get(f"{receiver}|{backend}", ""))
        host, _, port = address.rpartition(":")
        return declared.link_options(common, host, int(port or 0))

    def _network_options(self, backend: str, receiver: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Options of a network link on this machine (`Backend.link_options`).

        The dataflow's settings for the backend, the run's topic prefix, and the receiver's
        loopback address (one per receiver and backend).
        """
        from doradus.backends import backend_class

        common = self._common_options(backend)
        key = (receiver, backend)
        if key not in self._listen:
            self._listen[key] = free_port("127.0.0.1")  # the receiving node binds it a moment later
        return backend_class(backend).link_options(common, "127.0.0.1", self._listen[key])

    def _common_options(self, backend: str) -> dict[str, Any]:
        """The dataflow's settings for ``backend`` and the run's topic prefix."""
        settings = self._state.dataflow.communication.get(backend)
        common = dict(settings) if isinstance(settings, dict) else {}
        common["prefix"] = f"doradus/{self._state.run_id}/"
        common["link_key"] = self._link_key
        return common

    def inbound_remote(self) -> list[tuple[str, str]]:
        """(receiver, backend) of each link that reaches a node of this machine from another machine.

        What this daemon must announce a listening address for (a backend with a
        `Backend.machine_router` needs none: it uses routers).

        Example::

            wiring.inbound_remote()   # [('detector', 'tcp')]
        """
        from doradus.backends import backend_class

        state = self._state
        found = set()
        for spec in state.dataflow.nodes:
            if spec.id not in state.nodes:
                continue
            for inp in spec.inputs.values():
                if isinstance(inp.source, NodeSource) and inp.source.node not in state.nodes:
                    found.add(
                        (spec.id, link_backend(state.dataflow, state.specs[inp.source.node], remote=True))
                    )
        return sorted((r, b) for r, b in found if not backend_class(b).machine_router)


def link_backend(flow: Dataflow, sender: NodeSpec, *, remote: bool = False) -> str:
    """The backend of a sender's edges.

    On one machine: the node's ``communication`` (a name, or its ``local``), else the
    dataflow's ``local``, else `doradus.backends.DEFAULT_LOCAL_BACKEND`. Across machines:
    the node's ``remote``, else the dataflow's, else `DEFAULT_REMOTE_BACKEND`.

    Example:
        >>> from pathlib import Path
        >>> camera = NodeSpec(id="camera", kind="python", communication={"remote": "tcp"})
        >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(camera,))
        >>> link_backend(flow, camera), link_backend(flow, camera, remote=True)
        ('shm', 'tcp')
    """
    return edge_backend(flow.communication, sender, remote=remote)


def free_port(host: str) -> int:
    """A TCP port free on ``host`` right now (its user binds it a moment later).

    Example:
        >>> 0 < free_port("127.0.0.1") < 65536
        True
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def inbound_remote(flow: Dataflow, placement: dict[str, str], machine: str) -> list[tuple[str, str]]:
    """(receiver, backend) of each link reaching a node on ``machine`` from another machine.

    What ``machine`` must announce a listening address for: links of a backend with a
    `Backend.machine_router` meet at routers instead (`router_backends_across`).

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.model import InputSpec
        >>> camera = NodeSpec(id="camera", kind="python", outputs=("image",), communication={"remote": "tcp"})
        >>> image = InputSpec("image", NodeSource("camera", "image"))
        >>> detector = NodeSpec(id="detector", kind="python", inputs={"image": image})
        >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(camera, detector))
        >>> inbound_remote(flow, {"camera": "robot", "detector": "gpu"}, "gpu")
        [('detector', 'tcp')]
    """
    from doradus.backends import backend_class

    found = {
        (b, _remote_backend(flow, flow.node(a))) for a, b, here in _crossing(flow, placement, machine) if here
    }
    return sorted((r, b) for r, b in found if not backend_class(b).machine_router)


def router_backends_across(flow: Dataflow, placement: dict[str, str], machine: str) -> list[str]:
    """The backends with a `Backend.machine_router` that carry links between ``machine`` and others.

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.model import InputSpec
        >>> camera = NodeSpec(id="camera", kind="python", outputs=("image",))
        >>> image = InputSpec("image", NodeSource("camera", "image"))
        >>> detector = NodeSpec(id="detector", kind="python", inputs={"image": image})
        >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(camera, detector))
        >>> router_backends_across(flow, {"camera": "robot", "detector": "gpu"}, "gpu")   # the default
        ['zenoh']
    """
    from doradus.backends import backend_class

    used = {_remote_backend(flow, flow.node(a)) for a, _b, _h in _crossing(flow, placement, machine)}
    return sorted(name for name in used if backend_class(name).machine_router)


def _links_of(flow: Dataflow) -> dict[tuple[str, str], Link]:
    """One `Link` per (sender, receiver) pair of the dataflow, with its routes."""
    links: dict[tuple[str, str], Link] = {}
    for spec in flow.nodes:
        for input_id, inp in spec.inputs.items():
            if isinstance(inp.source, NodeSource):
                key = (inp.source.node, spec.id)
                link = links.setdefault(key, Link(*key))
                link.routes.setdefault(inp.source.output, []).append(input_id)
    return links


def _with_options(link: LinkConfig, options: dict[str, Any]) -> LinkConfig:
    """A copy of ``link`` with its backend's options (a network link's or one crossing machines)."""
    entry = link.copy()
    entry["options"] = options
    return entry


def _socket_pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for sock in (a, b):
        _grow_buffer(sock)
    return a, b


def _grow_buffer(sock: socket.socket) -> None:
    force = getattr(socket, "SO_SNDBUFFORCE", None)
    try:
        if force is not None:
            sock.setsockopt(socket.SOL_SOCKET, force, LINK_BUFFER)
            return
    except OSError:
        pass
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, LINK_BUFFER)
    except OSError:
        pass


def _crossing(flow: Dataflow, placement: dict[str, str], machine: str) -> list[tuple[str, str, bool]]:
    """(sender, receiver, receiver here) of each node-to-node pair with one end on ``machine``."""
    pairs = set()
    for spec in flow.nodes:
        for inp in spec.inputs.values():
            if isinstance(inp.source, NodeSource):
                a, b = placement.get(inp.source.node), placement.get(spec.id)
                if a != b and machine in (a, b):
                    pairs.add((inp.source.node, spec.id, b == machine))
    return sorted(pairs)


def _remote_backend(flow: Dataflow, sender: NodeSpec) -> str:
    """The backend of a sender's edges to other machines: the node's ``remote``, else the dataflow's."""
    return edge_backend(flow.communication, sender, remote=True)
