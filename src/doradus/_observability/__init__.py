"""Observability: structured log records, their store and search, terminal lines, OpenTelemetry export.

`records` is the record shape and the one level table (names, ranks, Python numbers,
colours); `store` writes and reads a run's log files; `query` filters and groups records;
`terminal` is the one formatter of records as terminal lines (`doradus run`, `start --attach`,
`logs`); `latency` holds the latency histogram's bounds; `telemetry`, `otel_providers` and `otel_env`
export to OpenTelemetry.

Used by nodes, the runtime and the control plane alike.

May import: the wire format and the foundation modules. Nothing above them.
"""
