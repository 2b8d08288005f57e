"""The descriptions of every key of a dataflow file, as editors show them from the JSON Schema.

One mapping per level, key → description; `json_schema` pairs them with the loader's key sets
and refuses to build the schema when they differ. docs/reference/dataflow-yaml.md says more.

Example:
    >>> TOP["nodes"].split(".")[0]
    'The nodes of the dataflow, each run as its own process'
"""

from __future__ import annotations

_NOT_APPLIED = " Checked, not applied yet (`doradus check` warns)."
_DURATION = " Seconds (`2.5`) or a duration text (`500ms`, `2s`, `1m`)."

TOP = {
    "nodes": "The nodes of the dataflow, each run as its own process. Required, at least one.",
    "env": "Environment variables of every node (text, numbers, booleans; `$VAR` expands). A node's "
    "own `env` wins.",
    "deploy": "`{machine: NAME}`: the machine of every node that names none.",
    "_unstable_deploy": "dora 0.x spelling of `deploy` (warning).",
    "debug": "dora's debug settings: `{enable_debug_inspection: bool}`." + _NOT_APPLIED,
    "health_check_interval": "How often the watchdog looks at the nodes, and how long a node may be "
    "not ready or not reading before `status` says so (default 5 s)." + _DURATION,
    "exit_when_nodes_finish": "dora: end the dataflow when nodes finish." + _NOT_APPLIED,
    "strict_types": "dora: check message types." + _NOT_APPLIED,
    "type_rules": "dora: type rules (a mapping or a list)." + _NOT_APPLIED,
    "communication": "Backends of the edges: `{local: shm, remote: zenoh}` plus a block of options "
    "per backend.",
    "default_data_format": "Data format of every output that declares none (default `arrow`).",
}

DEBUG = {"enable_debug_inspection": "dora: offer debug inspection." + _NOT_APPLIED}

NODE = {
    "id": "The node's id: letters, digits, `_`, `.`, `-`; unique; not `dora`. Required.",
    "name": "A human-readable name (shown by `doradus graph`).",
    "description": "What the node does (shown by `doradus graph`).",
    "path": "The program: a `.py` file, an executable (relative to the dataflow's folder), "
    "a command on PATH, or `dynamic` (you start it; it calls `Node(id)`)."
    " One of path/custom/operator/operators.",
    "custom": "dora 0.x form: `{source, args, envs, inputs, outputs, build}` (warning).",
    "operator": "One Python operator: `{python: op.py, inputs, outputs}`; outputs are `node/output`.",
    "operators": "Python operators, each with an `id`; their outputs are `node/op/output`.",
    "git": "dora: fetch the node from a git repository. Not supported yet: leave it out.",
    "branch": "dora: the git branch (needs `git`).",
    "tag": "dora: the git tag (needs `git`).",
    "rev": "dora: the git revision (needs `git`).",
    "build": "Build commands, one per line; run by `doradus build`.",
    "args": "Arguments: one text split like a shell would, or a list.",
    "env": "Environment variables of this node (text, numbers, booleans; `$VAR` expands).",
    "inputs": "Input id → source (`node/output`, `dora/timer/millis/20`, `dora/logs`) or `{source, "
    "queue_size, ...}`.",
    "outputs": "The ids of the node's outputs.",
    "send_stdout_as": "One of `outputs`: each line the node prints is sent on it.",
    "restart_policy": "Start the node again when it ends: `never` (default), `on-failure` (an exit "
    "status other than 0, or a signal the runtime did not send) or `always`.",
    "max_restarts": "Restarts allowed within `restart_window` (0: unlimited).",
    "restart_delay": "Delay before the first restart of a window, doubling for each next one." + _DURATION,
    "max_restart_delay": "The longest restart delay." + _DURATION,
    "restart_window": "Restarts are counted over this window, from its first restart "
    "(default: the whole run)." + _DURATION,
    "health_check_timeout": "A node busy with one input message for longer than this is ended as failed "
    "(its restart policy applies)." + _DURATION,
    "finish_grace_secs": "A node still running this long after its inputs all closed is stopped." + _DURATION,
    "startup_timeout": "A node not ready this long after it started is ended as failed "
    "(its restart policy applies)." + _DURATION,
    "shared_memory_pool_size": "The most of the node's shared memory one receiver may hold unreleased "
    "(`256MB`, `1GiB`, bytes; default 1 GiB); past it, newer messages to that receiver are dropped "
    "and counted in its `dropped`. Applies to `shm` links.",
    "cpu_affinity": "dora: CPU numbers the node may run on." + _NOT_APPLIED,
    "deploy": "`{machine: NAME}`: the machine whose daemon runs the node (`doradus start`).",
    "_unstable_deploy": "dora 0.x spelling of `deploy` (warning).",
    "data_format": "Format of the node's outputs: a name (`arrow`, `avro`, `capnp`, `flatbuffers`) "
    "or `{format, schema, type}`.",
    "schema": "Schema of the node's format: `file[:Type]` or `{file, type}`, relative to the "
    "dataflow's folder.",
    "output_formats": "Per output: a format name or `{data_format, schema}`, overriding the node's.",
    "communication": "Backend of the node's outgoing edges: a name, or `{local, remote}`.",
}

CUSTOM = {
    "source": "The program (the 0.x name of `path`). Required.",
    "args": NODE["args"],
    "envs": "Environment variables (the 0.x name of `env`).",
    "inputs": NODE["inputs"],
    "outputs": NODE["outputs"],
    "build": NODE["build"],
    "send_stdout_as": NODE["send_stdout_as"],
}

DEPLOY = {
    "machine": "The machine (daemon name) that runs the node(s).",
    "working_dir": "dora: the nodes' working folder." + _NOT_APPLIED,
    "labels": "dora: placement labels, `name: value`." + _NOT_APPLIED,
}

INPUT = {
    "source": "`node/output`, `dora/timer/<secs|millis|micros|nanos>/N`, `dora/timer/hz/F` or "
    "`dora/logs[/level[/node]]`.",
    "queue_size": "Messages kept for this input before the oldest is dropped (default 10).",
    "queue_policy": "`drop_oldest` (default): a full queue drops its oldest message. `backpressure`: "
    "nothing is dropped, the sender waits for room (at most `backpressure_timeout`); applied on the "
    "`shm` and `tcp` backends and for timers (`doradus check` warns elsewhere).",
    "backpressure_timeout": "With `queue_policy: backpressure`: how long a sender waits for room before "
    "it drops the message, counted as a backpressure timeout (default 5 s)." + _DURATION,
    "input_timeout": "Silence after which the input reads as closed (`InputClosed`), until its next "
    "message (`InputRecovered` first); the stream does not end for it." + _DURATION,
    "schema": "Avro reader schema of this input (schema evolution): `file` or `{file}`.",
    "data_format": "The format this input expects; `doradus check` reports a source writing another.",
}

OPERATOR = {
    "id": "The operator's id (in `operators:`): letters, digits, `_`, `.`, `-`. Required there.",
    "python": "The operator's Python file, or `{source: op.py, conda_env}`.",
    "shared-library": "dora: a shared-library operator. Not supported: write it in Python or run it "
    "as a node.",
    "wasm": "dora: a WebAssembly operator. Not supported: write it in Python or run it as a node.",
    "inputs": NODE["inputs"],
    "outputs": NODE["outputs"],
    "name": "A human-readable name.",
    "description": "What the operator does.",
    "build": NODE["build"],
    "send_stdout_as": "One of the operator's outputs: its printed lines are sent on it (one operator "
    "per node).",
}

PYTHON = {
    "source": "The operator's Python file. Required.",
    "conda_env": "dora: a conda environment. Ignored (warning): operators run in the dataflow's Python.",
}

SCHEMA_OBJECT = {
    "file": "The schema file, relative to the dataflow's folder. Required.",
    "type": "The message type in it (Cap'n Proto struct, FlatBuffers table).",
}

FORMAT_OBJECT = {
    "format": "The data format's name.",
    "schema": SCHEMA_OBJECT["file"].replace("The schema file", "Its schema: `file[:Type]` or `{file, type}`"),
    "type": SCHEMA_OBJECT["type"],
}

OUTPUT_FORMAT = {
    "data_format": "The output's data format.",
    "schema": "The output's schema: `file[:Type]` or `{file, type}`.",
}
