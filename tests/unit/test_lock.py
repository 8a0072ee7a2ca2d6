"""The locks pin exactly what the top-level requirement files ask for.

`make` installs from `requirements-dev.lock` and `tests/runtime/requirements.lock` (every
package, transitive ones included, with its hashes). These tests fail when someone edits a
top-level pin and forgets `make lock`, or edits a lock by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _requirement_lines(path: Path) -> list[str]:
    """Requirement lines of a pip requirements file, following `-r` includes."""
    lines: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            lines += _requirement_lines(path.parent / line[3:].strip())
            continue
        lines.append(line)
    return lines


def _lock_pins(path: Path) -> dict[str, set[str]]:
    """Name -> pinned versions of a `uv pip compile` lock (a universal lock may pin two)."""
    pins: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        if not line or line[0] in " #":
            continue
        requirement = Requirement(line.rstrip(" \\").strip())
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{path.name}: {line!r} is not an exact pin"
        pins.setdefault(canonicalize_name(requirement.name), set()).add(spec.version)
    return pins


LOCKS = [
    (ROOT / "requirements-dev.txt", ROOT / "requirements-dev.lock"),
    (ROOT / "tests/runtime/requirements.txt", ROOT / "tests/runtime/requirements.lock"),
]


@pytest.mark.parametrize(("top", "lock"), LOCKS, ids=lambda p: p.name)
def test_lock_pins_every_top_level_requirement_at_its_version(top: Path, lock: Path) -> None:
    pins = _lock_pins(lock)
    for line in _requirement_lines(top):
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{top.name} asks for {line!r}; {lock.name} lacks it: run make lock"
        for version in pins[name]:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{lock.name} pins {name}=={version}, {top.name} asks {line!r}: run make lock"
            )


@pytest.mark.parametrize(("top", "lock"), LOCKS, ids=lambda p: p.name)
def test_every_lock_line_carries_hashes(top: Path, lock: Path) -> None:
    text = lock.read_text()
    lines = text.splitlines()
    # pip's hash-checking mode refuses the whole install if one package lacks a hash.
    for number, line in enumerate(lines):
        if line and line[0] not in " #":
            assert line.endswith("\\"), f"{lock.name}: {line!r} has no --hash"
            assert lines[number + 1].strip().startswith("--hash=sha256:"), line


def test_project_dependencies_are_locked() -> None:
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = _lock_pins(ROOT / "requirements-dev.lock")
    for dependency in pyproject["project"]["dependencies"]:
        assert canonicalize_name(Requirement(dependency).name) in pins, dependency


def test_lambda_runtime_lock_has_the_same_sdk_as_the_dev_lock() -> None:
    dev = _lock_pins(ROOT / "requirements-dev.lock")
    runtime = _lock_pins(ROOT / "tests/runtime/requirements.lock")
    for sdk in ("boto3", "botocore"):
        assert dev[sdk] == runtime[sdk], f"{sdk}: dev {dev[sdk]} vs Lambda runtime {runtime[sdk]}"
