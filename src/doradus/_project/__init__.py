"""Project tooling: the templates of `init` and `new`, `doctor`, and node builds.

May import: the control plane (its client and profiles, to reach a coordinator), the dataflow
model, observability and the foundation modules. Never the CLI.
"""
