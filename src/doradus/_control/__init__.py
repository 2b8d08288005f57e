"""The control plane: coordinator, machine daemon, the client commands use, the API models.

The coordinator keeps the cluster's state (`state`), saved to SQLite (`persistence`) and
restored when it starts again (`recovery`), serves the HTTP and WebSocket API
(`coordinator`, with the log routes in `log_routes`), starts dataflows across machines
(`launch`), checks who is calling (`auth`, `daemon_link`), serves `/metrics` (`prometheus`),
steers nodes (`node_actions`: pause, resume, restart), shows them (`node_info`, from the text's
`node_facts`), keeps their parameters (`params`), finds the runs ``doradus topic`` reads (`topics`,
`topic_taps`, with `topic_values` and `topic_rates` for what it prints) and streams its live state over one
WebSocket (`stream`, with its message models `stream_models`, rates and edges `stream_stats`,
and each client's bounded queue `stream_outbox`). `machine_daemon` is `doradus daemon`, with
its link to the coordinator (`daemon_connection`: reconnecting) and each dataflow it runs
(`daemon_runs`);
`services` starts and ends them for `up`/`destroy`. Commands reach a coordinator through
`client` (address, token, retries; `profiles` for named settings) and do their work through
`dataflows`, `logs`, `node_commands`, `param_commands` and `registration` (a `doradus run`
reporting to a coordinator); `models` (and `node_models`) are the API's typed payloads.

May import: the runtime, the node process's events, the dataflow model, observability, the
wire format, backends, codecs and the foundation modules. Never the project tooling or the CLI.
"""
