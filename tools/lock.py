"""The dependency lock: make it, check it, and keep `.venv` equal to it.

Every package Doradus and its tools run with is pinned, with hashes, in
``requirements/lock.txt``, resolved by pip-tools from ``pyproject.toml`` (every
extra) with this machine's pip configuration (its index, extra indexes,
certificate and constraints). ``make demo`` and ``make test`` install exactly
that file without resolving anything (``pip install --no-deps
--require-hashes``); a lock that no longer matches ``pyproject.toml`` is an
error that names ``make lock``, never a silent re-resolve.

Commands (run from the project root)::

    python tools/lock.py lock [--upgrade]   # make lock / make upgrade (needs pip-tools)
    python tools/lock.py fresh              # before installing: the lock exists and is current
    python tools/lock.py sync               # after installing: .venv equals the lock

``fresh`` needs only the standard library; ``sync`` runs in ``.venv``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements" / "lock.txt"
NO_DEPS = ROOT / "requirements" / "no-deps.txt"
DORA_BENCH_IN = ROOT / "requirements" / "dora-bench.in"
DORA_BENCH = ROOT / "requirements" / "dora-bench.txt"
PROJECT = "doradus"
EXTRAS = ("all", "test", "docs", "lock")
"""The extras the lock resolves: every one `pyproject.toml` declares."""

FINGERPRINT = "# pyproject-requirements-sha256: "
REFRESH = "run `make lock` to refresh it (or `make upgrade` to move to the newest versions)"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
COMPILE_OPTIONS = (
    "--quiet",
    "--generate-hashes",
    "--allow-unsafe",
    "--strip-extras",
    "--no-emit-index-url",
    "--no-emit-find-links",
    "--newline=lf",
)


class LockError(Exception):
    """The lock is missing, stale or incomplete; the message says which and how to fix it."""


def canonical(name: str) -> str:
    """A distribution name as the package index compares it (PEP 503).

    >>> canonical("Types_PyYAML")
    'types-pyyaml'
    """
    return re.sub(r"[-_.]+", "-", name).lower()


def fingerprint(pyproject: Path = PYPROJECT) -> str:
    """A digest of everything in ``pyproject.toml`` that the lock resolves.

    The Python requirement, the dependencies, every extra and the build
    requirements: change any of them and the lock is stale.

    >>> len(fingerprint())
    64
    """
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    inputs = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-requires": data.get("build-system", {}).get("requires", []),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def read_pins(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of a hashed requirements file.

    Raises:
        LockError: the file does not exist.
    """
    if not path.is_file():
        raise LockError(f"{path.name} is missing: {REFRESH}")
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[canonical(match[1])] = match[2]
    return pins


def check_fresh(lock: Path = LOCK, pyproject: Path = PYPROJECT) -> None:
    """Fail unless the lock exists and was made from the current ``pyproject.toml``.

    Raises:
        LockError: the lock is missing, carries no fingerprint, or another one.
    """
    read_pins(lock)
    lines = lock.read_text().splitlines()
    marked = [line[len(FINGERPRINT) :].strip() for line in lines if line.startswith(FINGERPRINT)]
    recorded = marked[0] if marked else None
    if recorded is None:
        raise LockError(f"{lock.name} was not made by `make lock` (no fingerprint): {REFRESH}")
    if recorded != fingerprint(pyproject):
        raise LockError(
            f"{lock.name} is stale: the requirements in pyproject.toml changed since it was made; {REFRESH}"
        )


def project_requirements(pyproject: Path = PYPROJECT) -> Iterator[tuple[str, object]]:
    """Every requirement ``pyproject.toml`` states for the locked extras, self-references expanded.

    Yields ``(where, requirement)`` pairs, ``where`` naming the list it came from.
    """
    from packaging.requirements import Requirement

    project = tomllib.loads(pyproject.read_text())["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    seen: set[str] = set()
    todo = [("dependencies", text) for text in project.get("dependencies", [])]
    todo += [(f"optional-dependencies.{extra}", text) for extra in EXTRAS for text in optional.get(extra, [])]
    while todo:
        where, text = todo.pop()
        requirement = Requirement(text)
        if canonical(requirement.name) == PROJECT:
            for extra in sorted(requirement.extras - seen):
                seen.add(extra)
                todo += [(f"optional-dependencies.{extra}", t) for t in optional.get(extra, [])]
            continue
        yield where, requirement


def check_against_pyproject(lock: Path = LOCK, pyproject: Path = PYPROJECT) -> list[str]:
    """Problems where ``pyproject.toml`` and the lock disagree (empty when they agree).

    Each requirement of the project (dependencies and every locked extra) must
    be pinned, at a version its lower bound and other specifiers allow.
    """
    from packaging.requirements import Requirement

    pins = read_pins(lock)
    problems = []
    for where, requirement in project_requirements(pyproject):
        assert isinstance(requirement, Requirement)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        pinned = pins.get(canonical(requirement.name))
        if pinned is None:
            problems.append(f"{requirement} ({where}) is not in the lock")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement} ({where}) does not allow the locked {requirement.name}=={pinned}")
    return problems


def check_closed(lock: Path = LOCK) -> list[str]:
    """Problems where an installed locked package needs something the lock lacks.

    Walks the dependency graph from the project's requirements through each
    installed package's metadata, with the extras asked for on the way.
    Packages of ``requirements/no-deps.txt`` are installed without their
    dependencies on purpose, so their own requirements are not followed.
    """
    from importlib import metadata

    from packaging.requirements import Requirement

    pins = read_pins(lock)
    no_deps = read_pins(NO_DEPS)
    problems = []
    todo: list[tuple[str, frozenset[str], str]] = []
    for where, requirement in project_requirements():
        assert isinstance(requirement, Requirement)
        todo.append((canonical(requirement.name), frozenset(requirement.extras), f"pyproject.toml {where}"))
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras, needed_by = todo.pop()
        if (name, extras) in done:
            continue
        done.add((name, extras))
        if name not in pins:
            problems.append(f"{name} (needed by {needed_by}) is not in the lock")
            continue
        if name in no_deps:
            continue
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            problems.append(f"{name}=={pins[name]} is in the lock but not installed")
            continue
        for text in requires:
            requirement = Requirement(text)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            )
            if wanted:
                todo.append((canonical(requirement.name), frozenset(requirement.extras), name))
    return problems


def installed_versions() -> dict[str, str]:
    """``{canonical name: version}`` of every distribution in the running environment."""
    from importlib import metadata

    return {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}


def sync() -> None:
    """Make the running environment equal the lock, or say why it cannot.

    Checks that every locked package is installed at its locked version and
    that the lock is closed under dependencies; removes what is installed but
    not locked (a package dropped from the lock, or installed by hand).

    Raises:
        LockError: a version differs, or the lock lacks a dependency.
    """
    pins = {**read_pins(LOCK), **read_pins(NO_DEPS)}
    have = installed_versions()
    problems = [
        f"{name}=={version} is locked but {have.get(name, 'nothing')} is installed"
        for name, version in sorted(pins.items())
        if have.get(name) != version
    ]
    check_fresh()
    problems += check_against_pyproject() + check_closed()
    if problems:
        raise LockError("the lock does not match:\n  " + "\n  ".join(problems) + f"\n{REFRESH}")
    strays = sorted(set(have) - set(pins) - {PROJECT})
    if strays:
        print(f"removing what the lock does not hold: {', '.join(strays)}")
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", *strays], check=True)


def make_lock(*, upgrade: bool) -> None:
    """Resolve ``pyproject.toml`` (every extra) into the lock, and the dora-rs benchmark's lock.

    Uses pip-tools' ``pip-compile`` beside the running interpreter, so the
    resolution runs with this machine's pip configuration.
    """
    compile_ = [str(Path(sys.executable).parent / "pip-compile"), *COMPILE_OPTIONS]
    if upgrade:
        compile_.append("--upgrade")
    extras = [f"--extra={extra}" for extra in EXTRAS]
    subprocess.run(
        [*compile_, *extras, "--build-deps-for=editable", f"--output-file={_rel(LOCK)}", _rel(PYPROJECT)],
        check=True,
        cwd=ROOT,
    )
    subprocess.run(
        [*compile_, f"--output-file={_rel(DORA_BENCH)}", _rel(DORA_BENCH_IN)], check=True, cwd=ROOT
    )
    text = LOCK.read_text()
    text = "\n".join(line for line in text.splitlines() if not line.startswith(FINGERPRINT))
    header = f"{FINGERPRINT}{fingerprint()}\n# Made by `make lock` (tools/lock.py); do not edit by hand.\n"
    LOCK.write_text(header + text + "\n")
    print(f"locked {len(read_pins(LOCK))} packages in {LOCK.relative_to(ROOT)}")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit status 1 with the reason when the lock does not hold."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    locking = commands.add_parser("lock", help="resolve pyproject.toml into the lock")
    locking.add_argument("--upgrade", action="store_true", help="move every package to its newest version")
    commands.add_parser("fresh", help="the lock exists and matches pyproject.toml")
    commands.add_parser("sync", help="the environment equals the lock")
    args = parser.parse_args(argv)
    try:
        if args.command == "lock":
            make_lock(upgrade=args.upgrade)
        elif args.command == "fresh":
            check_fresh()
        else:
            sync()
    except LockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
