"""Observability: structured log records, their store and search, OpenTelemetry export.

Used by nodes, the runtime and the control plane alike.

May import: the wire format and the foundation modules. Nothing above them.
"""
