"""One run's supervisor: spawn nodes, wire their links, read their output, watch and sample them.

`supervisor.LocalDaemon` runs the nodes of one dataflow on this machine (under `doradus run`
and under a machine daemon alike); it is the facade of the run's parts, which share a
`state.RunState` (the nodes' records are `processes`):

- `resources`: whether the machine can hold the run (open files, memory);
- `links`: the links between nodes, on the backends their hooks choose;
- `spawn`: starting nodes through the run's keeper; `config`: the `NodeConfig` a node gets;
- `output`: the I/O thread reading the nodes' stdout and stderr into log records;
- `control_socket`: registration, the start barrier, ``stop``, ``peer_gone``;
- `run_log`: the run's records; `log_inputs`: the nodes' ``dora/logs`` inputs;
- `stats` and `metrics`: what nodes report and use, ``edges.json``;
- `ending`: exits, signals past the grace, waiting for the last node;
- `actions`, `node_stop`, `restart` and `format_change`: steering one node while the run goes
  on (pause, resume, stop, restart with new ``env``, ``args`` or data format);
- `restart_policy`: starting a node again when it ends, as its ``restart_policy`` says;
  `liveness`: nodes that do not start, stop reading or never finish;
- `params`: each node's parameters (``doradus param``), told to it as they change;
- `taps`, `topic_facts`, `topic_messages` and `topic_pub`: ``doradus topic`` (taps on a
  node's outputs, what each output is, injecting a message).

`foreground.run_dataflow` is `doradus run`; `stdout_relay` sends a node's stdout lines as
messages.

May import: the dataflow model, the wire format, backends, codecs, observability and the
foundation modules. Never the node process, the control plane or the CLI.
"""
