"""A copy of the Chalice project and a fake ``chalice`` command, for the deploy tests."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from mfawatch.deploy.chalice_app import ChaliceCommand, Project
from mfawatch.deploy.deployer import Deployer
from mfawatch.paths import CHALICE_DIR, REPO_ROOT


def project_copy(tmp_path: Path) -> Project:
    """The app, chalicelib and the tests' stage config, copied below ``tmp_path``."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("app.py", "requirements.txt"):
        shutil.copy2(REPO_ROOT / name, root / name)
    shutil.copytree(
        REPO_ROOT / "chalicelib", root / "chalicelib", ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / ".chalice").mkdir()
    for path in CHALICE_DIR.glob("*.json"):  # the tests' stages (tests/stage/)
        shutil.copy2(path, root / ".chalice" / path.name)
    return Project(root)


class FakeChalice:
    """``subprocess.run`` for ChaliceCommand: records the commands, writes chalice's record."""

    def __init__(self, project: Project, functions: list[str], returncode: int = 0) -> None:
        self.project = project
        self.functions = functions
        self.returncode = returncode
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.commands.append(command)
        if self.returncode:
            return subprocess.CompletedProcess(command, self.returncode, "", "An error occurred")
        record = {
            "resources": [
                {"name": f, "resource_type": "lambda_function", "lambda_arn": f"arn:{f}"}
                for f in self.functions
            ]
        }
        self.project.deployed_dir.mkdir(exist_ok=True)
        (self.project.deployed_dir / "dev.json").write_text(json.dumps(record))
        return subprocess.CompletedProcess(command, 0, "Resources deployed:\n", "")


def fake_deployer(project: Project, run: FakeChalice, clients: dict[str, Any]) -> Deployer:
    """A ``Deployer`` of stage ``dev`` over ``run``'s functions, with the given boto3 clients by
    service name (a step asking for another one fails with ``KeyError``)."""
    chalice = ChaliceCommand(project, "us-east-1", {}, run)
    return Deployer(
        project, "dev", "us-east-1", run.functions, clients.__getitem__, chalice=chalice, echo=print
    )
