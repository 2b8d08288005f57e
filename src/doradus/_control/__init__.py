"""The control plane: coordinator, machine daemon, the client commands use, the API models.

The coordinator keeps the cluster's state (`state`), serves the HTTP and WebSocket API
(`coordinator`), starts dataflows across machines (`launch`), checks who is calling (`auth`,
`daemon_link`), serves `/metrics` (`prometheus`), steers nodes (`node_actions`: pause, resume,
restart) and streams its live state over one WebSocket (`stream`, with its message models
`stream_models`, rates and edges `stream_stats`, and each client's bounded queue
`stream_outbox`). `machine_daemon` is `doradus daemon`;
`services` starts and ends them for `up`/`destroy`. Commands reach a coordinator through
`client` (address, token, retries; `profiles` for named settings) and do their work through
`dataflows`, `logs`, `node_commands` and `registration` (a `doradus run` reporting to a coordinator); `models`
are the API's typed payloads.

May import: the runtime, the node process's events, the dataflow model, observability, the
wire format, backends, codecs and the foundation modules. Never the project tooling or the CLI.
"""
