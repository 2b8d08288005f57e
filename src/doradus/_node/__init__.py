"""The node process: `Node`, its events, inbox, logging, the dora layer and the operator host.

Every node process loads this package, so it stays light.

May import: the wire format, `doradus.backends`, `doradus.codecs`, observability, the dataflow
model and the foundation modules. Never the runtime supervisor, the control plane or the CLI.
"""
