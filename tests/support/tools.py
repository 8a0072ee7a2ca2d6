"""The offline tools integration tests run: ``chalice package`` and cfn-lint, the pinned ones
beside this Python, in an environment that cannot reach AWS."""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ROOT, chalice_project

if TYPE_CHECKING:
    from cfnlint.rules import Rules


def tool(name: str) -> str:
    """The path of a command-line tool installed beside this Python (or on PATH)."""
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert path, f"{name} not installed (pip install -r requirements-dev.txt)"
    return path


def offline_env() -> dict[str, str]:
    """This environment without AWS credentials or profile, and with the Region that
    ``chalice package`` needs: nothing here may reach AWS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    return env


def run_offline(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command (from the repository root) in :func:`offline_env` updated with ``env``;
    the caller asserts on the result."""
    return subprocess.run(
        list(args),
        cwd=cwd,
        env=offline_env() | (env or {}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


#: cfn-lint's exit code bits by the first letter of a rule id (error, warning, informational).
CFN_LINT_EXIT_BITS = {"E": 2, "W": 4, "I": 8}


@functools.cache
def _cfn_lint_rules() -> Rules:
    """cfn-lint's rules, loaded as its command loads them: once for all the templates it is given.
    Importing the rule modules and reading the schemas they hold cost about 0.7 s of CPU, more
    than linting a small template, so a test worker loads them once and every :func:`cfn_lint`
    call runs them (each template's run starts with every rule's ``initialize``, as the command
    does between its templates)."""
    from cfnlint.config import ConfigMixIn
    from cfnlint.runner import Runner

    return Runner(ConfigMixIn([])).rules


def cfn_lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    """cfn-lint on the templates, as its command does given them all (same options, same exit
    code bits, a match a line), but in this process: its resource specifications and its rules
    (:func:`_cfn_lint_rules`) load once per test worker, not once per call (the caller asserts
    on the result)."""
    from cfnlint.config import ConfigMixIn, ManualArgs
    from cfnlint.runner.template import run_template_by_file_paths

    # The Region the command gets from offline_env(), whatever this process's environment says.
    options = ManualArgs(
        regions=[offline_env()["AWS_DEFAULT_REGION"]], templates=[str(path) for path in paths]
    )
    matches = list(run_template_by_file_paths(ConfigMixIn([], **options), _cfn_lint_rules()))
    returncode = 0
    for match in matches:
        returncode |= CFN_LINT_EXIT_BITS.get(match.rule.id[:1], 0)
    stdout = "".join(f"{match}\n" for match in matches)
    return subprocess.CompletedProcess(["cfn-lint", *map(str, paths)], returncode, stdout, "")


def chalice_package(out: Path, *options: str, stage: str = "dev") -> Path:
    """``chalice package --stage STAGE [options] out`` offline, of a project whose stages are the
    tests' own (:func:`tests.conftest.chalice_project`, beside ``out``); returns ``out``.

    Skips below Python 3.12: Chalice sets the Lambda runtime from the Python that packages.
    """
    if sys.version_info < (3, 12):
        pytest.skip("Chalice sets the Lambda runtime from this Python; package with 3.12+")
    project = chalice_project(out.parent / f"{out.name}-project")
    result = run_offline(
        tool("chalice"), "package", "--stage", stage, *options, str(out.resolve()), cwd=project
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def shared_chalice_package(tmp_path_factory: pytest.TempPathFactory, stage: str = "dev") -> Path:
    """:func:`chalice_package` of ``stage`` built once per test run and shared by every module
    and pytest-xdist worker that asks for it (each ``chalice package`` costs about a second of
    CPU); the callers only read it (one that unzips it does so into a folder of its own).

    The run's temporary root holds it: the workers' common parent under xdist (as xdist's docs
    share session data), else this session's own. A lock file makes a second worker wait for the
    first one's build instead of building again; a build that fails leaves nothing behind."""
    basetemp = tmp_path_factory.getbasetemp()
    root = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
    built = root / f"chalice-package-{stage}"
    with (root / f"chalice-package-{stage}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.is_dir():
            work = Path(tempfile.mkdtemp(prefix=f"{built.name}-", dir=root))
            chalice_package(work / "out", stage=stage)
            work.rename(built)
    return built / "out"
