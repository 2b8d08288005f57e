"""Testing helpers: conformance kits for plug-ins, and `MockNode` for a node's own logic.

- `check_codec`, `check_foreign` (with `GARBAGE`, `garbage_for`, `decode_fully`): hold a
  codec to exactly what it declares in `Codec.detects`.
- `check_backend`, `check_unreachable` (with `CollectingReceiver`, `outgoing`,
  `PAYLOAD_SIZES`): hold a backend to the guarantees of `Backend`.
- `MockNode`: the `doradus.Node` API in the test's own process: feed inputs, collect what the
  node sends, no daemon and no other process.

The built-in codecs and backends run these kits in their own tests; a third-party plug-in
calls them the same way.

May import: the node process's events, the wire format, `doradus.backends`, `doradus.codecs`
and the foundation modules. Never the runtime, the control plane or the CLI.

Example:
    >>> from doradus.codecs import FormatSpec, get_codec
    >>> check_codec(get_codec(FormatSpec("arrow")), [[1, 2], ["a"]])
"""

from __future__ import annotations

from doradus.testing._backend_kit import (
    PAYLOAD_SIZES,
    CollectingReceiver,
    check_backend,
    check_unreachable,
    outgoing,
)
from doradus.testing._codec_kit import GARBAGE, check_codec, check_foreign, decode_fully, garbage_for
from doradus.testing._mock_node import MockNode

__all__ = [
    "GARBAGE",
    "PAYLOAD_SIZES",
    "CollectingReceiver",
    "MockNode",
    "check_backend",
    "check_codec",
    "check_foreign",
    "check_unreachable",
    "decode_fully",
    "garbage_for",
    "outgoing",
]
