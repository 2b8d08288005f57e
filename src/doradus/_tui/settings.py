"""``doradus tui``'s settings: theme, shown columns and refresh interval, from flags or doradus.toml.

Each comes from, in order: the command's flag (``--theme``, ``--columns``,
``--refresh``), the ``[tui]`` table of ``doradus.toml`` (the project's, then the
user's: `doradus._control.profiles.load_tui_settings`), then the defaults here. Names
are checked against Textual's themes and the nodes table's columns (`columns.COLUMNS`),
with a did-you-mean.

Example:
    >>> resolve_settings(theme="nord", columns="node,errors", refresh=0.5, read_files=False)
    Settings(theme='nord', columns=('node', 'errors'), refresh=0.5)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from doradus._control.profiles import load_tui_settings, tui_columns, tui_refresh, tui_theme
from doradus._tui.columns import COLUMNS, DEFAULT_COLUMNS

DEFAULT_THEME = "textual-dark"
DEFAULT_REFRESH = 1.0
"""Seconds between two updates of the stream, as the stream's own default."""


def themes() -> list[str]:
    """The names ``--theme`` takes: Textual's built-in themes.

    Example:
        >>> "nord" in themes() and DEFAULT_THEME in themes()
        True
    """
    from textual.theme import BUILTIN_THEMES

    return sorted(BUILTIN_THEMES)


@dataclass(frozen=True)
class Settings:
    """What the app starts with.

    Example:
        >>> Settings().refresh
        1.0
    """

    theme: str = DEFAULT_THEME
    columns: tuple[str, ...] = DEFAULT_COLUMNS
    refresh: float = DEFAULT_REFRESH


def resolve_settings(
    *,
    theme: str | None = None,
    columns: str | None = None,
    refresh: float | str | None = None,
    start: Path | None = None,
    read_files: bool = True,
) -> Settings:
    """The settings from the flags given, else doradus.toml's ``[tui]``, else the defaults.

    Raises:
        ProfileError: A flag or a ``[tui]`` key names no theme or column, or a refresh
            interval out of range (the error names where, and the fix).

    Example:
        >>> resolve_settings(read_files=False) == Settings()
        True
    """
    names = themes()
    found = load_tui_settings(start, columns=list(COLUMNS), themes=names) if read_files else None
    chosen_theme = tui_theme(theme, names) if theme is not None else None
    chosen_columns = tui_columns(columns, list(COLUMNS)) if columns is not None else None
    chosen_refresh = tui_refresh(refresh) if refresh is not None else None
    return Settings(
        theme=chosen_theme or (found.theme if found and found.theme else DEFAULT_THEME),
        columns=chosen_columns or (found.columns if found and found.columns else DEFAULT_COLUMNS),
        refresh=chosen_refresh or (found.refresh if found and found.refresh else DEFAULT_REFRESH),
    )
