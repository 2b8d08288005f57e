"""A run's log records on disk: ``out/<run-id>/logs.jsonl``, one JSON record per line, rotated.

When ``logs.jsonl`` would grow past ``max_bytes`` it is renamed
``logs.1.jsonl`` (older files shift to ``logs.2.jsonl``…) and a new one is
started; at most ``backups`` rotated files are kept, the oldest deleted.
`read_records` reads them back oldest first.

Both limits can be set from the environment: ``DORADUS_LOG_MAX_BYTES``
(default 64 MiB) and ``DORADUS_LOG_BACKUPS`` (default 5).

Example::

    store = LogStore(Path("out/01J..."))
    store.write(make_record("INFO", "hello", node="talker"))
    store.close()
    list(read_records(Path("out/01J...")))
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from doradus._quantities import parse_byte_size

LOG_FILE = "logs.jsonl"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_BACKUPS = 5


def _limits() -> tuple[int, int]:
    max_bytes = DEFAULT_MAX_BYTES
    backups = DEFAULT_BACKUPS
    if raw := os.environ.get("DORADUS_LOG_MAX_BYTES"):
        size = parse_byte_size(raw)
        if size is not None:
            max_bytes = max(1024, size)
    if raw := os.environ.get("DORADUS_LOG_BACKUPS"):
        try:
            backups = max(0, int(raw))
        except ValueError:
            pass
    return max_bytes, backups


class LogStore:
    """Appends records to ``folder/logs.jsonl``, rotating by size; thread-safe.

    Example::

        with LogStore(Path("out/run")) as store:
            store.write({"timestamp": "...", "level": "INFO", "message": "hi"})
    """

    def __init__(self, folder: Path, max_bytes: int | None = None, backups: int | None = None) -> None:
        env_max, env_backups = _limits()
        self.folder = folder
        self.max_bytes = max_bytes if max_bytes is not None else env_max
        self.backups = backups if backups is not None else env_backups
        self._lock = threading.Lock()
        self._file: Any = None
        self._size = 0

    def _open(self) -> Any:
        if self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / LOG_FILE
            self._file = open(path, "ab")  # noqa: SIM115 - closed by close()
            self._size = self._file.tell()
        return self._file

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (a line of JSON); rotates first if the file would grow too big.

        Example::

            store.write(make_record("WARN", "slow", node="planner"))
        """
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            file = self._open()
            if self._size and self._size + len(line) > self.max_bytes:
                self._rotate()
                file = self._open()
            file.write(line)
            file.flush()
            self._size += len(line)

    def _rotate(self) -> None:
        self._file.close()
        self._file = None
        if self.backups <= 0:
            (self.folder / LOG_FILE).unlink(missing_ok=True)
            return
        oldest = self.folder / f"logs.{self.backups}.jsonl"
        oldest.unlink(missing_ok=True)
        for k in range(self.backups - 1, 0, -1):
            src = self.folder / f"logs.{k}.jsonl"
            if src.exists():
                src.rename(self.folder / f"logs.{k + 1}.jsonl")
        (self.folder / LOG_FILE).rename(self.folder / "logs.1.jsonl")

    def close(self) -> None:
        """Close the file (a later `write` opens it again).

        Example::

            store.close()
        """
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> LogStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def log_files(folder: Path) -> list[Path]:
    """A run folder's log files, oldest first (``logs.N.jsonl`` … ``logs.1.jsonl``, ``logs.jsonl``).

    Example::

        log_files(Path("out/01J..."))   # [PosixPath('out/01J.../logs.jsonl')]
    """
    rotated = []
    for path in folder.glob("logs.*.jsonl"):
        middle = path.name[len("logs.") : -len(".jsonl")]
        if middle.isdigit():
            rotated.append((int(middle), path))
    files = [p for _k, p in sorted(rotated, reverse=True)]
    current = folder / LOG_FILE
    if current.exists():
        files.append(current)
    return files


def read_records(folder: Path) -> Iterator[dict[str, Any]]:
    """Every record stored in a run folder, oldest first (lines that are not JSON are skipped).

    Example::

        errors = [r for r in read_records(Path("out/01J...")) if r["level"] == "ERROR"]
    """
    for path in log_files(folder):
        with open(path, "rb") as file:
            for raw in file:
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record
