"""The backend registry: hooks readable without a backend's library, install hints when it is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from doradus.backends import backend_class, backend_names, get_backend

LIBRARIES = ("zenoh", "grpc", "google.protobuf", "aioquic", "cryptography", "redis", "paho", "websockets")
VALUES = ("numpy", "pyarrow")
"""What message values need: the supervisor reads hooks but never a value (~100 ms, ~40 MB to load)."""


def _imported_by(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``code``."""
    probe = f"import sys\n{code}\nprint(','.join(m for m in {modules!r} if m in sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [m for m in done.stdout.strip().split(",") if m]


def test_reading_every_backends_hooks_imports_none_of_their_libraries() -> None:
    code = (
        "from doradus.backends import backend_class, backend_names\n"
        "for name in backend_names():\n"
        "    cls = backend_class(name)\n"
        "    cls.options, cls.option_choices, cls.uses_socket_pairs, cls.machine_router\n"
        "    cls.link_options({}, '127.0.0.1', 7000)\n"
    )
    assert _imported_by(code, LIBRARIES + VALUES) == []


def test_reading_the_shm_hooks_imports_neither_numpy_nor_pyarrow() -> None:
    code = "from doradus.backends import backend_class\nassert backend_class('shm').uses_socket_pairs"
    assert _imported_by(code, VALUES) == []
    made = (
        "from doradus.backends import get_backend\n"
        "class Quiet:\n"
        "    deliver = closed = error = print\n"
        "get_backend('shm')('a', Quiet()).close()"
    )
    assert _imported_by(made, VALUES) == list(VALUES)  # a backend that runs has them


def test_a_missing_library_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zenoh", None)  # `import zenoh` fails
    assert backend_class("zenoh").machine_router  # the hooks need no library
    with pytest.raises(ImportError, match=r"pip install 'doradus\[zenoh\]'"):
        get_backend("zenoh")


@pytest.mark.parametrize("name", ["shm", "tcp", "websocket", "redis", "mqtt", "zenoh", "grpc", "quic"])
def test_every_built_in_backend_declares_its_options(name: str) -> None:
    assert name in backend_names()
    assert backend_class(name).options is not None


def test_only_shm_uses_socket_pairs_and_only_zenoh_a_machine_router() -> None:
    pairs = {n for n in backend_names() if backend_class(n).uses_socket_pairs}
    routers = {n for n in backend_names() if backend_class(n).machine_router}
    assert (pairs, routers) == ({"shm"}, {"zenoh"})
