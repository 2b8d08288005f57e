"""The node process: `Node`, its events, inbox, logging, the dora layer and the operator host.

``node`` is the `Node` facade; it registers through ``attach``, talks to its daemon through
``channel``, turns what arrives into events in ``receive`` (ticks from ``timers``), counts in
``statistics``, reads its configuration's files and codecs in ``config``, and logs through
``log_methods`` and ``log_handler``. The shapes it exchanges with its daemon are
`doradus._wire.control`'s.

Every node process loads this package, so it stays light.

May import: the wire format, `doradus.backends`, `doradus.codecs`, observability, the dataflow
model and the foundation modules. Never the runtime supervisor, the control plane or the CLI.
"""
