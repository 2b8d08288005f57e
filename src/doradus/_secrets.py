"""Keeping secrets out of what Doradus prints: passwords in URLs, tokens in options.

A backend's URL may carry credentials (``redis://:pw@host``, ``mqtt://user:pw@host``) and its
options a password or token. Whatever Doradus shows — log records, error messages, ``status``,
``check``, the control API and its stream — goes through these functions first, which put
`MASK` where a secret was. They keep everything else (scheme, user name, host, port,
database), so a message still says which server it is about.

May import: the standard library only (a foundation module).

Example:
    >>> redact_url("redis://:s3cret@127.0.0.1:6379/0")
    'redis://:***@127.0.0.1:6379/0'
    >>> redact("could not reach mqtt://robot:s3cret@broker:1883 (refused)")
    'could not reach mqtt://robot:***@broker:1883 (refused)'
    >>> redact_options({"url": "rediss://u:pw@h", "password": "pw", "mode": "streams"})
    {'url': 'rediss://u:***@h', 'password': '***', 'mode': 'streams'}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
"""What stands where a secret was."""
_SECRET_WORDS = ("pass", "pwd", "token", "secret", "credential", "auth", "apikey", "api_key", "private")
"""An option or query key holding one of these (any case) holds a secret."""
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/?#@]*):(?P<secret>[^\s/?#@]*)@")
"""``scheme://user:secret@``: the secret of a URL in any text."""
_QUERY = re.compile(r"(?P<head>[?&;](?P<key>[^\s=&;#]+)=)(?P<value>[^\s&;#'\")\]>]*)")
"""``?key=value`` / ``&key=value``: query parameters in any text (a value ends at a quote or bracket)."""


def is_secret_key(key: str) -> bool:
    """Whether an option or query parameter named ``key`` holds a secret.

    Example:
        >>> [is_secret_key(k) for k in ("password", "API_TOKEN", "url", "ssl_keyfile", "mode")]
        [True, True, False, False, False]
    """
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def redact(text: str) -> str:
    """``text`` with the password of every URL in it, and secret query parameters, masked.

    Args:
        text: any text: an error message, a log line, a URL.

    Returns:
        The text, ``scheme://user:***@host`` for each URL carrying a password and
        ``?token=***`` for each query parameter whose name says it is a secret.

    Example:
        >>> redact("ws://h:9/x?token=abc&mode=fast and redis://:pw@h/0")
        'ws://h:9/x?token=***&mode=fast and redis://:***@h/0'
        >>> redact("no secret here: redis://127.0.0.1:6379/0")
        'no secret here: redis://127.0.0.1:6379/0'
    """
    if "://" not in text and "=" not in text:
        return text  # the common case: nothing that could hold a secret
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK if m['secret'] else ''}@", text)
    return _QUERY.sub(
        lambda m: m["head"] + (MASK if is_secret_key(m["key"]) and m["value"] else m["value"]), text
    )


def redact_url(url: str) -> str:
    """``url`` with its password and secret query parameters masked (see `redact`).

    Example:
        >>> redact_url("mqtt://robot:pw@broker:1883")
        'mqtt://robot:***@broker:1883'
        >>> redact_url("redis://127.0.0.1:6379/0")
        'redis://127.0.0.1:6379/0'
    """
    return redact(url)


def redact_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of backend options fit to show: secrets masked, nested maps and lists too.

    Args:
        options: link or backend options, as the dataflow file gives them.

    Returns:
        The same keys; a value under a secret-named key is `MASK`, a text value is `redact`-ed.

    Example:
        >>> redact_options({"tls": {"cert": "c.pem", "key_password": "pw"}, "urls": ["redis://:x@h"]})
        {'tls': {'cert': 'c.pem', 'key_password': '***'}, 'urls': ['redis://:***@h']}
    """
    return {
        key: MASK if is_secret_key(str(key)) and value else _redact_value(value)
        for key, value in options.items()
    }


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return redact_options(value)
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(item) for item in value)
    return value
