"""The live terminal UI, ``doradus tui``: watch, search and steer running dataflows.

It is a client like any other: it reads the coordinator's WebSocket stream
(``/api/v1/stream``, `feed`) and acts through its HTTP API (`actions`), so what it
shows and does any other client can show and do. Its parts:

- `feed`: the stream client, run in a Textual worker; it reconnects a bounded number
  of times, announcing each retry.
- `records` and `live`: the stream's messages as typed records, and the state the
  screens draw from (dataflows, the selected dataflow's nodes and edges, rate
  histories, log records).
- `formatting`: rates (``12.0/s``), latencies, bytes, durations.
- `columns`: the nodes table's columns, sorting and filtering; `graph_layout` and
  `graph`: the dataflow laid out in layers and drawn with box-drawing characters;
  `settings`: theme, columns and refresh rate; `actions`: the requests its keys send.
- `app`, `panes`, `detail`, `logs_pane`, `screens`: the Textual app, its widgets and
  screens; `styles.tcss` holds their layout.

May import: Textual, ``websockets``, the control plane's client (address and token
resolution, `doradus._control.client`), the API's models (`doradus._control.models`),
profiles (`doradus._control.profiles`), observability's log levels and the foundation
modules. Never the runtime, the node process or the coordinator's server side: it
knows the coordinator only through its API. Only the CLI imports it.
"""
