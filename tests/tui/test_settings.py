"""``doradus tui``'s settings: the ``[tui]`` table of doradus.toml, its checks, and flags over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from doradus._control.profiles import ProfileError, load_tui_settings, read_profiles
from doradus._tui.columns import COLUMNS, DEFAULT_COLUMNS
from doradus._tui.settings import Settings, resolve_settings, themes


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (a repository root) and an empty user config folder."""
    folder = tmp_path / "project"
    (folder / ".git").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return folder


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_no_file_gives_the_defaults(project: Path) -> None:
    assert resolve_settings(start=project) == Settings()


def test_the_tui_table_sets_theme_columns_and_refresh(project: Path) -> None:
    write(
        project / "doradus.toml", '[tui]\ntheme = "nord"\ncolumns = ["node", "errors"]\nrefresh = "500ms"\n'
    )
    found = resolve_settings(start=project)
    assert found == Settings(theme="nord", columns=("node", "errors"), refresh=0.5)


def test_flags_win_over_the_file(project: Path) -> None:
    write(project / "doradus.toml", '[tui]\ntheme = "nord"\nrefresh = 5\n')
    found = resolve_settings(theme="gruvbox", columns="node,in,p50", refresh="2", start=project)
    assert found == Settings(theme="gruvbox", columns=("node", "in", "p50"), refresh=2.0)


def test_the_projects_keys_win_over_the_users(project: Path, tmp_path: Path) -> None:
    write(tmp_path / "config" / "doradus" / "doradus.toml", '[tui]\ntheme = "dracula"\nrefresh = 3\n')
    write(project / "doradus.toml", "[tui]\nrefresh = 0.25\n")
    found = load_tui_settings(project)
    assert (found.theme, found.refresh) == ("dracula", 0.25)
    assert len(found.sources) == 2


def test_the_tui_table_does_not_disturb_profiles(project: Path) -> None:
    path = write(project / "doradus.toml", '[tui]\nrefresh = 2\n\n[profiles.dev]\noutput = "json"\n')
    assert read_profiles(path)["dev"].output == "json"


@pytest.mark.parametrize(
    ("text", "message", "fix"),
    [
        ("[tui]\nrefrsh = 1\n", "unknown key `refrsh`", "did you mean `refresh`?"),
        ("[tui]\nrefresh = 0\n", "`refresh = 0` is not a refresh interval", "from 0.1 to 60"),
        ('[tui]\nrefresh = "soon"\n', "is not a refresh interval", "500ms"),
        ('[tui]\ncolumns = ["node", "latency"]\n', "no column `latency`", "columns are: node"),
        ('[tui]\ncolumns = ["node", "erors"]\n', "no column `erors`", "did you mean `errors`?"),
        ("[tui]\ncolumns = []\n", "names no column", "name some of"),
        ('[tui]\ntheme = "nordic"\n', "no theme `nordic`", "did you mean `nord`?"),
        ("tui = 3\n", "[tui] must be a table", "[tui]"),
        ("[tui\n", "not valid TOML", "fix the syntax"),
    ],
)
def test_a_bad_table_is_refused_with_cause_and_fix(project: Path, text: str, message: str, fix: str) -> None:
    path = write(project / "doradus.toml", text)
    with pytest.raises(ProfileError) as raised:
        resolve_settings(start=project)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)
    assert fix in raised.value.fix


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"theme": "solarised-dark"}, "--theme: no theme `solarised-dark`"),
        ({"columns": "node,cpu,disk"}, "--columns: no column `disk`"),
        ({"refresh": "90"}, "--refresh: `refresh = '90'` is not a refresh interval"),
    ],
)
def test_a_bad_flag_is_refused_with_cause_and_fix(project: Path, flags: dict[str, str], message: str) -> None:
    with pytest.raises(ProfileError) as raised:
        resolve_settings(start=project, **flags)
    assert message in str(raised.value)
    assert raised.value.fix


def test_every_column_and_theme_named_in_the_defaults_exists() -> None:
    assert set(DEFAULT_COLUMNS) <= set(COLUMNS)
    assert Settings().theme in themes()
