"""Project tooling: profiles, the templates of `init`/`new`, `doctor`, and node builds.

May import: the dataflow model, the control client (to reach a coordinator), observability and
the foundation modules. Never the CLI.
"""
