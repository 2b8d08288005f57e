"""What a node reads from its `NodeConfig`: the dataflow text, the codecs of its formats.

Example:
    >>> from doradus._wire.node_config import InputConfig
    >>> tick: InputConfig = {"kind": "timer", "queue_size": 1, "policy": "drop-oldest", "source": "t"}
    >>> load_codecs({}, {"tick": tick})
    ({}, {})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from doradus._wire.node_config import InputConfig, NodeConfig

if TYPE_CHECKING:
    from doradus.codecs import Codec


def descriptor_text(config: NodeConfig) -> str:
    """The dataflow text the node's run started from (its run folder's copy).

    Bounded like every dataflow read; a node started without one (older daemon) reads the
    dataflow file itself.

    Raises:
        OSError: the file cannot be read, or is not a regular file within the bound.

    Example::

        yaml.safe_load(descriptor_text(node._config))["nodes"]
    """
    from doradus._dataflow.loader import MAX_DATAFLOW_BYTES
    from doradus._files import read_regular_file

    path = config.get("descriptor") or config["dataflow"]
    return read_regular_file(path, limit=MAX_DATAFLOW_BYTES).decode("utf-8")


def load_codecs(
    output_formats: Mapping[str, dict[str, Any]], inputs: Mapping[str, InputConfig]
) -> tuple[dict[str, Codec], dict[str, Codec]]:
    """The codecs of the outputs and of the inputs that are not Arrow (loading checks their schemas).

    Args:
        output_formats: the node's ``output_formats`` (output id → format, Arrow ones left out).
        inputs: the node's inputs (a ``format`` on those that are not Arrow).

    Returns:
        The codecs by output id, and by input id.

    Raises:
        KeyError: a format is unknown.
        ImportError: a format's packages are missing.
        SchemaError: a schema is invalid.

    Example:
        >>> load_codecs({}, {})
        ({}, {})
    """
    if not output_formats and not any(v.get("format") for v in inputs.values()):
        return {}, {}  # all Arrow: the codec registry is not even imported
    from doradus.codecs import FormatSpec, get_codec

    outputs = {o: get_codec(FormatSpec.from_json(f)) for o, f in output_formats.items()}
    decoders = {k: get_codec(FormatSpec.from_json(v["format"])) for k, v in inputs.items() if v.get("format")}
    return outputs, decoders
