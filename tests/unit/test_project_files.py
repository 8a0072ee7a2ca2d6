"""Project files: one source for the version, the license the metadata declares, lint hooks."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

import yaml

import chalicelib
import mfawatch
from mfawatch.paths import REPO_ROOT


def test_the_version_is_written_once_in_chalicelib() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "chalicelib.__version__"}
    assert mfawatch.__version__ == chalicelib.__version__
    # The installed metadata agrees (make reinstalls when chalicelib/__init__.py changes).
    assert version("mfawatch") == chalicelib.__version__


def test_license_is_the_apache_2_text_the_metadata_declares() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == {"text": "Apache-2.0"}
    text = (REPO_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert re.search(r"^   Copyright \d{4} \S", text, re.MULTILINE)
    assert "[yyyy]" not in text


def test_pre_commit_runs_what_make_lint_and_typecheck_run_with_the_venvs_tools() -> None:
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    (repo,) = config["repos"]
    assert repo["repo"] == "local"
    # A hook that takes file names gets the changed files; make runs the tool on the tree (".").
    hooks = [
        hook["entry"].removesuffix(" --force-exclude")
        + (" ." if hook.get("pass_filenames", True) else "")
        for hook in repo["hooks"]
    ]
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")

    def recipe(target: str) -> list[str]:
        lines = makefile.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
        return [line.strip().replace("$(VENV)", ".venv") for line in lines]

    assert hooks == recipe("lint") + recipe("typecheck")
