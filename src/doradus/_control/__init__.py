"""The control plane: coordinator, machine daemon, the client the CLI uses, the API models.

The coordinator keeps the cluster's state (`state`), serves the HTTP and WebSocket API
(`coordinator`), starts dataflows across machines (`launch`) and checks who is calling
(`auth`, `daemon_link`). `machine_daemon` is `doradus daemon`; `client` is how commands reach
the coordinator; `models` are the API's typed payloads; `prometheus` serves `/metrics`.

May import: the runtime, the dataflow model, observability, the wire format, backends, codecs
and the foundation modules. Never the CLI.
"""
