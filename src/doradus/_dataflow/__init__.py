"""The dataflow model and its loader: what a dataflow file says, checked.

`loader.load_dataflow` turns a YAML file (or its text) into a frozen `model.Dataflow`,
reporting every problem at file:line:col with a fix (`problems`). The readers are split by
what they read: YAML with positions (`yaml_positions`), generic fields (`fields`), a node's
inputs/outputs/env (`node_fields`), nodes (`nodes`, `node_paths`), operators (`operators`),
input sources (`sources`), data formats (`formats`; a running node's new one checked in
`format_change`), backends (`communication`), settings not applied yet (`not_applied`);
`diagram` draws it.

May import: `doradus.backends` and `doradus.codecs` (their registries: names, options,
schemas), the wire format and the foundation modules. Never the node process, the runtime, the
control plane or the CLI.
"""
