"""Toy plug-ins: a backend and a codec that Doradus knows only through their entry points.

Nothing here is imported by Doradus itself: the ``toy_plugins-0.0.dist-info`` folder beside
this package registers `ToyBackend` in the ``doradus.backends`` entry-point group and
`ToyCodec` in ``doradus.codecs``, and its hooks tell Doradus everything that differs from a
built-in backend or codec. Only the public API is used (``doradus.backends``,
``doradus.codecs``, ``doradus``), as a third-party package would.
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

from doradus import ConnectError, DecodeError, EncodeError
from doradus.backends import get_backend
from doradus.codecs import Codec, Detects, as_bytes

_Tcp: Any = get_backend("tcp")
FLAVOURS = ("plain", "salted")


class ToyBackend(_Tcp):
    """TCP, under its own name, with an option of its own and its own link options.

    ``flavour`` (one of `FLAVOURS`) is the option a dataflow may give it; `link_options`
    marks each link so that `_open_transport` can prove the daemon asked this class.
    """

    name = "toy"
    options = _Tcp.options | {"flavour"}
    option_choices = MappingProxyType({"flavour": FLAVOURS})

    @classmethod
    def link_options(cls, common: dict[str, Any], host: str, port: int) -> tuple[dict[str, Any], ...]:
        out, inbound = super().link_options(common, host, port)
        return {**out, "toy_end": "out"}, {**inbound, "toy_end": "in"}

    def _open_transport(self) -> None:
        for link in [*self.out_links, *self.in_links.values()]:
            want = "out" if link.direction == "out" else "in"
            if link.options.get("toy_end") != want or link.options.get("flavour") not in FLAVOURS:
                raise ConnectError(f"toy link to {link.peer!r} was not wired by ToyBackend: {link.options}")
        super()._open_transport()


class ToyCodec(Codec):
    """JSON values in a frame of their own: a 4-byte little-endian length, then the UTF-8 text."""

    name = "toy"
    tag = 5
    needs_schema = False
    detects = Detects.TRUNCATION | Detects.TRAILING_BYTES

    def encode(self, value: Any) -> bytes:
        try:
            text = json.dumps(value).encode()
        except (TypeError, ValueError) as exc:
            raise EncodeError(f"toy: {exc}") from exc
        return len(text).to_bytes(4, "little") + text

    def decode(self, data: Any) -> Any:
        view = bytes(as_bytes(data))
        if len(view) < 4 or int.from_bytes(view[:4], "little") != len(view) - 4:
            raise DecodeError(f"toy: not one framed message ({len(view)} bytes)")
        try:
            return json.loads(view[4:])
        except (UnicodeDecodeError, ValueError) as exc:
            raise DecodeError(f"toy: {exc}") from exc

    def to_python(self, value: Any) -> Any:
        return value
