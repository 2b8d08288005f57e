"""Named settings (``--profile NAME``) from ``doradus.toml``.

A profile is a ``[profiles.NAME]`` table in ``doradus.toml``: first the file
in the current folder or one of its parents (up to the repository root, the
folder holding ``.git``), else the user's (``$XDG_CONFIG_HOME/doradus/doradus.toml``,
else ``~/.config/doradus/doradus.toml``). Keys: ``coordinator``,
``token_file``, ``log_level``, ``output``, ``backend``.

Example::

    # doradus.toml
    [profiles.staging]
    coordinator = "10.0.0.5:6300"
    output = "json"

    profile = load_profile("staging")
    print(profile.coordinator)
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from doradus._dataflow.problems import closest
from doradus._exceptions import DoradusError
from doradus._observability.records import LEVELS

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
