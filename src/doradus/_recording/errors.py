"""What fails with recordings: `RecordingError`, and the ``mcap`` library when it is missing.

Example:
    >>> str(RecordingError("run.mcap is not an MCAP file", fix="record one with `doradus record`"))
    'run.mcap is not an MCAP file: record one with `doradus record`'
"""

from __future__ import annotations

from types import ModuleType

from doradus._exceptions import DoradusError

INSTALL_FIX = "pip install 'doradus[record]'"
"""What installs the libraries recordings need (``mcap``, ``zstandard``, ``lz4``)."""


class RecordingError(DoradusError):
    """A recording cannot be written, read or replayed; the message names the cause and the fix.

    Example:
        >>> RecordingError("no topic matches 'cam/*'", fix="see `doradus recording info`").fix
        'see `doradus recording info`'
    """

    def __init__(self, message: str, *, fix: str = "") -> None:
        self.fix = fix
        super().__init__(f"{message}: {fix}" if fix else message)


def require_mcap() -> ModuleType:
    """The ``mcap`` package, imported now; `RecordingError` naming the extra when it is missing.

    Raises:
        RecordingError: ``mcap`` is not installed.

    Example:
        >>> require_mcap().__name__
        'mcap'
    """
    try:
        import mcap
        import mcap.reader
        import mcap.writer
    except ImportError as exc:
        raise RecordingError(f"recordings need the mcap library ({exc})", fix=INSTALL_FIX) from exc
    return mcap
