"""One run's supervisor: spawn nodes, wire their links, read their output, watch and sample them.

`supervisor.LocalDaemon` runs the nodes of one dataflow on this machine (under `doradus run`
and under a machine daemon alike); `foreground.run_dataflow` is `doradus run`; `stdout_relay`
sends a node's stdout lines as messages.

May import: the dataflow model, the wire format, backends, codecs, observability and the
foundation modules. Never the node process, the control plane or the CLI.
"""
