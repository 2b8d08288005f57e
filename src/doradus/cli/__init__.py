"""The ``doradus`` command line: thin commands over the library.

Each command parses its arguments, calls the library and renders with rich; `_main` holds the
group and loads each command's module only when that command is used. Modules by command group:
`_run` (run, check), `_cluster` (coordinator, daemon, up, destroy), `_dataflows` (start, stop,
restart, clean, list), `_status` (status, top), `_nodes` (node list|info|pause|resume|stop|restart|set,
laid out by `_node_views`), `_params` (param), `_logs` (logs), `_project` (init, new), `_build`,
`_graph`, `_profile`, `_tools` (version, completion, doctor), `_tui` (the terminal UI, over
`doradus._tui`), `_recording` (record, replay, recording info|export); `_options` and `_render`
are what they share.

May import: any part of the library. Nothing imports it.

Example::

    $ doradus run examples/hello-world/dataflow.yml
"""

from __future__ import annotations

from doradus.cli._main import main

__all__ = ["main"]
