r"""Reading a file someone named, safely: regular files only, never more than a bound.

``open()`` on a named pipe blocks until a writer comes; ``read()`` of ``/dev/zero`` never
ends; a 100 GiB file fills memory. `read_regular_file` refuses all three before reading a
byte past its limit: it looks at the file with ``stat`` first, opens it non-blocking (a pipe
created in between cannot block the open), checks the opened file again with ``fstat``, and
reads at most ``limit + 1`` bytes. Symbolic links are followed; what they point to is checked.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.yml").write_text("nodes: []\n")
    >>> read_regular_file(folder / "a.yml", limit=100)
    b'nodes: []\n'
    >>> os.mkfifo(folder / "pipe")
    >>> read_regular_file(folder / "pipe", limit=100)
    Traceback (most recent call last):
    ...
    doradus._files.NotRegularFile: ... is not a regular file: it is a named pipe (FIFO)
"""

from __future__ import annotations

import errno
import os
import stat

_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_CHUNK = 1 << 16


class NotRegularFile(OSError):
    """The path names a pipe, a device or a socket: reading it could block or never end.

    Example:
        >>> NotRegularFile("/dev/zero", "a character device").kind
        'a character device'
    """

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        self.kind = kind
        super().__init__(errno.EINVAL, f"{os.fspath(path)} is not a regular file: it is {kind}")

    def __str__(self) -> str:
        return str(self.strerror)


class FileTooLarge(OSError):
    """The file holds more than the reader's limit.

    Example:
        >>> FileTooLarge("/big.yml", 1 << 20).limit
        1048576
    """

    def __init__(self, path: str | os.PathLike[str], limit: int) -> None:
        self.limit = limit
        super().__init__(errno.EFBIG, f"{os.fspath(path)} is larger than {_size(limit)}")

    def __str__(self) -> str:
        return str(self.strerror)


def read_regular_file(path: str | os.PathLike[str], *, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Guarantees: never blocks on a pipe or device, never reads more than ``limit + 1``
    bytes, and the error messages name the file, never its contents.

    Args:
        path: The file (a symbolic link is followed).
        limit: The most bytes accepted.

    Returns:
        The whole file.

    Raises:
        NotRegularFile: A named pipe, device or socket.
        FileTooLarge: More than ``limit`` bytes.
        IsADirectoryError: A folder.
        OSError: It does not exist or cannot be opened (``FileNotFoundError``, ``PermissionError``...).

    Example:
        >>> read_regular_file("/dev/zero", limit=10)
        Traceback (most recent call last):
        ...
        doradus._files.NotRegularFile: /dev/zero is not a regular file: it is a character device
    """
    _check(path, os.stat(path).st_mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        _check(path, info.st_mode)  # what was opened, if the path changed since the stat
        if info.st_size > limit:
            raise FileTooLarge(path, limit)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew after the fstat
            raise FileTooLarge(path, limit)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check(path: str | os.PathLike[str], mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", os.fspath(path))
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a file")
    raise NotRegularFile(path, kind)


def _size(limit: int) -> str:
    """``1 MiB`` for exact mebibytes, else bytes.

    Example:
        >>> _size(1 << 20), _size(1000)
        ('1 MiB', '1000 bytes')
    """
    return f"{limit >> 20} MiB" if limit and limit % (1 << 20) == 0 else f"{limit} bytes"
