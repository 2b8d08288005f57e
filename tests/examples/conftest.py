"""Fixtures for the examples' tests: run an example's dataflow from a copy, at its test size.

``make test`` runs every example reduced; ``make examples`` sets ``DORADUS_EXAMPLES=full``
and the same tests run them at full size (``full_size()`` tells a test which).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.backends.conftest import SHARED_MQTT, free_port, reachable, start_private_mosquitto, unavailable
from tests.conftest import DORADUS, Ran, assert_nothing_left, shm_entries

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def full_size() -> bool:
    """Whether this run is ``make examples`` (full size) rather than ``make test`` (reduced)."""
    return os.environ.get("DORADUS_EXAMPLES") == "full"


def copy_example(name: str, folder: Path) -> Path:
    """A copy of ``examples/<name>`` in ``folder`` (without run folders), so runs leave no files behind."""
    target = folder / name
    shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns("out", "__pycache__"))
    return target


@pytest.fixture
def run_example(tmp_path: Path) -> Callable[..., Ran]:
    """Run ``doradus run`` on a copy of an example: ``run_example("large-pipeline", "--env", "K=V")``."""

    def run(name: str, *args: str, timeout: float = 90, env: dict[str, str] | None = None) -> Ran:
        folder = copy_example(name, tmp_path)
        before = shm_entries()
        proc = subprocess.run(
            [*DORADUS, "run", str(folder / "dataflow.yml"), "--no-color", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            env={**os.environ, **(env or {})},
        )
        assert_nothing_left(before, folder)
        return Ran(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture(scope="session")
def mqtt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's Mosquitto at 127.0.0.1:1883, else a private one (skip, or fail under CI=true)."""
    if reachable(SHARED_MQTT):
        yield "mqtt://127.0.0.1:1883"
        return
    broker = start_private_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker.url
    broker.stop()


# ---------------------------------------------------------------- PostgreSQL
# Who may connect differs per machine: the `postgres` role over TCP (trust), the current user
# over TCP, or the current user over the local socket (peer).
POSTGRES_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "postgresql://127.0.0.1:5432/postgres",
    "host=/var/run/postgresql dbname=postgres",
)


def _first_server_dsn() -> str | None:
    import psycopg

    for dsn in POSTGRES_CANDIDATES:
        try:
            with psycopg.connect(dsn, connect_timeout=3):
                return dsn
        except psycopg.Error:
            continue
    return None


def _private_postgres(folder: Path) -> tuple[str, Callable[[], None]]:
    """initdb + pg_ctl from PATH on a free port; (dsn, stop)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        unavailable("no PostgreSQL at 127.0.0.1:5432 accepts us and no initdb/pg_ctl on PATH")
    if os.geteuid() == 0:
        unavailable("no PostgreSQL at 127.0.0.1:5432 accepts us, and initdb refuses to run as root")
    data, port = folder / "data", free_port()
    subprocess.run(
        [str(initdb), "-D", str(data), "-U", "postgres", "-A", "trust"], check=True, capture_output=True
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [str(pg_ctl), "-D", str(data), "-o", options, "-l", str(folder / "pg.log"), "-w", "start"], check=True
    )

    def stop() -> None:
        subprocess.run(
            [str(pg_ctl), "-D", str(data), "-m", "fast", "-w", "stop"], check=False, capture_output=True
        )

    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of this test session on the machine's PostgreSQL (or a private server); dropped after."""
    import psycopg
    from psycopg import sql

    stop: Callable[[], None] | None = None
    server = _first_server_dsn()
    if server is None:
        server, stop = _private_postgres(tmp_path_factory.mktemp("postgres"))
    name = f"doradus_examples_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(server, dbname=name)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if stop is not None:
            stop()
