"""Named settings (``--profile NAME``) from ``doradus.toml``.

A profile is a ``[profiles.NAME]`` table in ``doradus.toml``: first the file
in the current folder or one of its parents (up to the repository root, the
folder holding ``.git``), else the user's (``$XDG_CONFIG_HOME/doradus/doradus.toml``,
else ``~/.config/doradus/doradus.toml``). Keys: ``coordinator``,
``token_file``, ``log_level``, ``output``, ``backend``.

The same files may hold a ``[tui]`` table, the defaults of ``doradus tui``
(`TuiSettings`: ``theme``, ``columns``, ``refresh``); the project's keys win over
the user's, and the command's flags over both.

Example::

    # doradus.toml
    [profiles.staging]
    coordinator = "10.0.0.5:6300"
    output = "json"

    [tui]
    refresh = 0.5

    profile = load_profile("staging")
    print(profile.coordinator)
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from doradus._dataflow.problems import closest
from doradus._exceptions import DoradusError
from doradus._observability.records import LEVELS
from doradus._quantities import parse_duration

ENV_PROFILE = "DORADUS_PROFILE"
FILE_NAME = "doradus.toml"
PROFILE_KEYS = ("coordinator", "token_file", "log_level", "output", "backend")
OUTPUTS = ("table", "json", "yaml")
LOG_LEVELS = tuple(level.lower() for level in LEVELS)
"""What ``log_level`` may say: the levels of `--log-level`."""


class ProfileError(DoradusError, ValueError):
    """A profile is missing or a ``doradus.toml`` is invalid (a usage error: exit 2).

    Example:
        >>> ProfileError("no profile 'x'", "define [profiles.x]").fix
        'define [profiles.x]'
    """

    def __init__(self, message: str, fix: str) -> None:
        self.fix = fix
        super().__init__(message)


@dataclass(frozen=True)
class Profile:
    """One profile and the file it came from.

    Example:
        >>> Profile("dev", Path("doradus.toml"), coordinator="127.0.0.1:7000").settings()
        {'coordinator': '127.0.0.1:7000'}
    """

    name: str
    source: Path
    coordinator: str | None = None
    token_file: str | None = None
    log_level: str | None = None
    output: str | None = None
    backend: str | None = None

    def settings(self) -> dict[str, str]:
        """The keys this profile sets (unset ones left out)."""
        return {
            key: value for key, value in asdict(self).items() if key in PROFILE_KEYS and value is not None
        }

    def to_dict(self) -> dict[str, Any]:
        """Stable keys for ``--output json|yaml``: name, source, and every key (null when unset)."""
        data: dict[str, Any] = {"name": self.name, "source": str(self.source)}
        data.update({key: getattr(self, key) for key in PROFILE_KEYS})
        return data


def project_file(start: Path | None = None) -> Path | None:
    """The nearest ``doradus.toml`` from ``start`` (the current folder) up to the repository root.

    Example:
        >>> project_file(Path("/")) is None or True
        True
    """
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / FILE_NAME
        if path.is_file():
            return path
        if (candidate / ".git").exists():
            return None
    return None


def user_file() -> Path:
    """The user's ``doradus.toml``: ``$XDG_CONFIG_HOME/doradus/`` or ``~/.config/doradus/``.

    Example:
        >>> user_file().name
        'doradus.toml'
    """
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "doradus" / FILE_NAME


def config_files(start: Path | None = None) -> list[Path]:
    """The files profiles are read from, first wins: the project's, then the user's (when they exist).

    Example:
        >>> all(path.name == "doradus.toml" for path in config_files())
        True
    """
    files = [path for path in (project_file(start), user_file()) if path is not None and path.is_file()]
    return list(dict.fromkeys(files))


def read_profiles(path: Path) -> dict[str, Profile]:
    """Every profile of one file, validated.

    Raises:
        ProfileError: The file is not valid TOML, or a profile has an unknown key or a bad value.

    Example::

        read_profiles(Path("doradus.toml"))["staging"].coordinator
    """
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}", "fix the syntax at that line") from exc
    except OSError as exc:
        raise ProfileError(f"{path}: cannot be read: {exc.strerror}", "check the file's permissions") from exc
    tables = data.get("profiles", {})
    if not isinstance(tables, dict):
        raise ProfileError(f"{path}: `profiles` must be a table", "write profiles as [profiles.NAME] tables")
    return {name: _profile(path, name, table) for name, table in tables.items()}


def load_profiles(start: Path | None = None) -> dict[str, Profile]:
    """Every profile found, by name; a project profile hides a user profile of the same name.

    Raises:
        ProfileError: A file is invalid.

    Example::

        sorted(load_profiles())
    """
    found: dict[str, Profile] = {}
    for path in reversed(config_files(start)):
        found.update(read_profiles(path))
    return dict(sorted(found.items()))


def load_profile(name: str, start: Path | None = None) -> Profile:
    """The profile called ``name``.

    Raises:
        ProfileError: No such profile (the message lists those there are) or a file is invalid.

    Example::

        load_profile("staging").coordinator
    """
    profiles = load_profiles(start)
    if name in profiles:
        return profiles[name]
    files = config_files(start)
    where = ", ".join(str(path) for path in files) or f"no {FILE_NAME} found"
    available = ", ".join(profiles) or "none"
    guess = closest(name, profiles)
    hint = f"did you mean `{guess}`? " if guess else ""
    fix = (
        f"{hint}use one of the profiles there are, or add [profiles.{name}] to {FILE_NAME} "
        f"(in this project or in {user_file()})"
    )
    raise ProfileError(f"no profile {name!r} (profiles: {available}; read: {where})", fix)


_active: Profile | None = None


def activate(profile: Profile | None) -> None:
    """Make ``profile`` the one `active_profile` returns for the rest of the process.

    Example:
        >>> activate(None)
    """
    global _active
    _active = profile


def active_profile() -> Profile | None:
    """The profile in use: the one activated by ``--profile``, else ``$DORADUS_PROFILE``'s, else None.

    Raises:
        ProfileError: ``DORADUS_PROFILE`` names a missing profile.

    Example:
        >>> activate(None)
        >>> active_profile() is None or ENV_PROFILE in os.environ
        True
    """
    if _active is not None:
        return _active
    name = os.environ.get(ENV_PROFILE)
    if not name:
        return None
    profile = load_profile(name)
    activate(profile)
    return profile


def _profile(path: Path, name: str, table: Any) -> Profile:
    where = f"{path}: [profiles.{name}]"
    if not isinstance(table, dict):
        raise ProfileError(
            f"{where} must be a table", f"write [profiles.{name}] followed by key = value lines"
        )
    for key, value in table.items():
        if key not in PROFILE_KEYS:
            guess = closest(key, PROFILE_KEYS)
            hint = f"did you mean `{guess}`? " if guess else ""
            keys = ", ".join(PROFILE_KEYS)
            raise ProfileError(f"{where}: unknown key `{key}`", f"{hint}a profile may set: {keys}")
        if not isinstance(value, str) or not value:
            raise ProfileError(f"{where}: `{key}` must be a non-empty string", f'write {key} = "…"')
    output = table.get("output")
    if output is not None and output not in OUTPUTS:
        raise ProfileError(
            f"{where}: `output = {output!r}` is not a format", f"use one of: {', '.join(OUTPUTS)}"
        )
    level = table.get("log_level")
    if level is not None and level.lower() not in LOG_LEVELS:
        raise ProfileError(
            f"{where}: `log_level = {level!r}` is not a level", f"use one of: {', '.join(LOG_LEVELS)}"
        )
    return Profile(name, path, **table)


TUI_KEYS = ("theme", "columns", "refresh")
"""What the ``[tui]`` table may set."""
REFRESH_RANGE = (0.1, 60.0)
"""The shortest and longest refresh interval ``doradus tui`` takes, in seconds."""


@dataclass(frozen=True)
class TuiSettings:
    """The ``[tui]`` table: ``doradus tui``'s theme, shown columns and refresh interval (seconds).

    Unset keys are None; ``sources`` are the files the keys came from.

    Example:
        >>> TuiSettings(refresh=0.5).merged(TuiSettings(theme="nord"))
        TuiSettings(theme='nord', columns=None, refresh=0.5, sources=())
    """

    theme: str | None = None
    columns: tuple[str, ...] | None = None
    refresh: float | None = None
    sources: tuple[Path, ...] = ()

    def merged(self, over: TuiSettings) -> TuiSettings:
        """These settings with the keys ``over`` sets taking their place."""
        return TuiSettings(
            theme=over.theme if over.theme is not None else self.theme,
            columns=over.columns if over.columns is not None else self.columns,
            refresh=over.refresh if over.refresh is not None else self.refresh,
            sources=(*self.sources, *over.sources),
        )


def read_tui_settings(
    path: Path, *, columns: Collection[str] = (), themes: Collection[str] = ()
) -> TuiSettings:
    """The ``[tui]`` table of one file, validated (an empty `TuiSettings` when it has none).

    ``columns`` and ``themes``, when given, are the names the keys may use.

    Raises:
        ProfileError: Invalid TOML, an unknown key, or a bad value.

    Example::

        read_tui_settings(Path("doradus.toml")).refresh
    """
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}", "fix the syntax at that line") from exc
    except OSError as exc:
        raise ProfileError(f"{path}: cannot be read: {exc.strerror}", "check the file's permissions") from exc
    table = data.get("tui")
    if table is None:
        return TuiSettings()
    where = f"{path}: [tui]"
    if not isinstance(table, dict):
        raise ProfileError(f"{where} must be a table", "write [tui] followed by key = value lines")
    for key in table:
        if key not in TUI_KEYS:
            guess = closest(key, TUI_KEYS)
            hint = f"did you mean `{guess}`? " if guess else ""
            raise ProfileError(f"{where}: unknown key `{key}`", f"{hint}[tui] may set: {', '.join(TUI_KEYS)}")
    return TuiSettings(
        theme=tui_theme(table.get("theme"), themes, where=where),
        columns=tui_columns(table.get("columns"), columns, where=where),
        refresh=tui_refresh(table.get("refresh"), where=where),
        sources=(path,),
    )


def load_tui_settings(
    start: Path | None = None, *, columns: Collection[str] = (), themes: Collection[str] = ()
) -> TuiSettings:
    """The ``[tui]`` settings of the user's file, then the project's over them.

    Raises:
        ProfileError: A file is invalid.

    Example::

        load_tui_settings(columns=["node", "state"]).columns
    """
    found = TuiSettings()
    for path in reversed(config_files(start)):
        found = found.merged(read_tui_settings(path, columns=columns, themes=themes))
    return found


def tui_theme(value: Any, themes: Collection[str] = (), *, where: str = "--theme") -> str | None:
    """A theme name, checked against ``themes`` (when given).

    Raises:
        ProfileError: Not a name, or not one of ``themes``.

    Example:
        >>> tui_theme("nord", ["nord", "gruvbox"]), tui_theme(None)
        ('nord', None)
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ProfileError(f"{where}: `theme` must be a non-empty string", 'write theme = "nord"')
    if themes and value not in themes:
        guess = closest(value, themes)
        hint = f"did you mean `{guess}`? " if guess else ""
        raise ProfileError(f"{where}: no theme `{value}`", f"{hint}use one of: {', '.join(sorted(themes))}")
    return value


def tui_columns(
    value: Any, known: Collection[str] = (), *, where: str = "--columns"
) -> tuple[str, ...] | None:
    """Column names from a list or a comma-separated string, checked against ``known`` (when given).

    Raises:
        ProfileError: Not a list of names, none at all, or a name not in ``known``.

    Example:
        >>> tui_columns("node, state,in", ["node", "state", "in"])
        ('node', 'state', 'in')
    """
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ProfileError(f"{where}: `columns` must be a list of names", 'write columns = ["node", "state"]')
    cleaned = tuple(name.strip() for name in names if name.strip())
    if not cleaned:
        raise ProfileError(f"{where}: `columns` names no column", f"name some of: {', '.join(known)}")
    for name in cleaned:
        if known and name not in known:
            guess = closest(name, known)
            hint = f"did you mean `{guess}`? " if guess else ""
            raise ProfileError(f"{where}: no column `{name}`", f"{hint}columns are: {', '.join(known)}")
    return cleaned


def tui_refresh(value: Any, *, where: str = "--refresh") -> float | None:
    """A refresh interval in seconds: a number, or a duration such as ``"500ms"``.

    Raises:
        ProfileError: Not a duration, or outside `REFRESH_RANGE`.

    Example:
        >>> tui_refresh(2), tui_refresh("500ms"), tui_refresh(None)
        (2.0, 0.5, None)
    """
    if value is None:
        return None
    seconds = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = parse_duration(value)
    low, high = REFRESH_RANGE
    if seconds is None or not low <= seconds <= high:
        raise ProfileError(
            f"{where}: `refresh = {value!r}` is not a refresh interval",
            f'give seconds from {low:g} to {high:g}, e.g. refresh = 1 or refresh = "500ms"',
        )
    return seconds
