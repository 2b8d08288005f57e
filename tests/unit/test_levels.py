"""One level table: every list of levels is derived from it or pinned to it."""

from __future__ import annotations

from typing import get_args

from doradus._control import profiles
from doradus._control.models import LevelName
from doradus._observability.records import LEVEL_RANK, LEVELS, PYTHON_LEVELS
from doradus._project import templates


def test_the_api_levels_are_the_tables() -> None:
    assert get_args(LevelName) == LEVELS


def test_derived_lists_follow_the_table() -> None:
    assert LEVELS == ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
    assert [LEVEL_RANK[name] for name in LEVELS] == list(range(len(LEVELS)))
    assert sorted(PYTHON_LEVELS.values()) == [PYTHON_LEVELS[name] for name in LEVELS]
    assert tuple(name.lower() for name in LEVELS) == profiles.LOG_LEVELS
    assert set(templates.LOG_LEVELS) == set(LEVELS) - {"FATAL"}
