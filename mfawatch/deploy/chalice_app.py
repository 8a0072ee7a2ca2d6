"""The Chalice project on disk and the ``chalice`` command that deploys it.

:class:`ChaliceApp` runs ``chalice deploy`` only when the app's fingerprint (code, config,
policy, Chalice and Python versions, Region) differs from the one recorded after the last
successful deploy from this folder, or a recorded function is gone; ``mfawatch deploy``
(:mod:`mfawatch.deploy.deployer`) calls it for its ``app`` step.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from mfawatch.deploy.stacks import StackError


@dataclass(frozen=True)
class Project:
    """A Chalice project folder: ``app.py``, ``chalicelib/``, ``.chalice/config.json``.

    The checkout by default; tests give a temporary copy so that the tracked config and policy
    files are never written.
    """

    root: Path

    @property
    def chalice_dir(self) -> Path:
        return self.root / ".chalice"

    @property
    def config_path(self) -> Path:
        return self.chalice_dir / "config.json"

    @property
    def deployed_dir(self) -> Path:
        return self.chalice_dir / "deployed"

    def policy_path(self, stage: str) -> Path:
        return self.chalice_dir / f"policy-{stage}.json"

    def out_dir(self, stage: str) -> Path:
        return self.root / "out" / "deploy" / stage

    def fingerprint_path(self, stage: str) -> Path:
        """Beside Chalice's own ``deployed/<stage>.json`` (git-ignored)."""
        return self.deployed_dir / f"{stage}.mfawatch.json"

    def app_fingerprint(self, stage: str, extra: Sequence[str] = ()) -> str:
        """A digest of everything ``chalice deploy`` deploys for ``stage``."""
        digest = hashlib.sha256()
        files = [self.root / "app.py", self.root / "requirements.txt", self.config_path]
        files.append(self.policy_path(stage))
        chalicelib = self.root / "chalicelib"
        files += sorted(
            path
            for path in chalicelib.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        )
        for path in files:
            digest.update(str(path.relative_to(self.root)).encode() + b"\0")
            digest.update(path.read_bytes() if path.is_file() else b"(missing)")
            digest.update(b"\0")
        for item in extra:
            digest.update(item.encode() + b"\0")
        return digest.hexdigest()


class ChaliceCommand:
    """The venv's ``chalice`` command on a project folder, with the deploy Region.

    A separate process rather than Chalice's deployer in-process: ``chalice deploy`` imports the
    project's ``app`` module, and this process has already imported the checkout's (the handler
    list comes from it); a child process also gets ``AWS_ENDPOINT_URL`` exactly as the user set it.
    """

    def __init__(
        self,
        project: Project,
        region: str,
        environ: Mapping[str, str],
        run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
        executable: Path = Path(sys.executable).parent / "chalice",
    ) -> None:
        self._project = project
        self.region = region
        self._env = {**environ, "AWS_DEFAULT_REGION": region}
        self._run = run
        self._executable = executable

    def __call__(self, *args: str) -> str:
        command = [str(self._executable), "--project-dir", str(self._project.root), *args]
        try:
            result = self._run(
                command, env=self._env, capture_output=True, text=True, timeout=1800, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StackError(f"chalice {args[0]}: {exc}", "is chalice installed (make)?") from exc
        output = (result.stdout or "") + (result.stderr or "")
        if result.returncode != 0:
            last = "\n".join(output.strip().splitlines()[-8:])
            raise StackError(
                f"chalice {' '.join(args)} exited {result.returncode}:\n{last}",
                "the lines above are Chalice's error; see docs/deploy.md, Troubleshooting",
            )
        return output

    def deploy(self, stage: str) -> str:
        return self("deploy", "--stage", stage)

    def delete(self, stage: str) -> str:
        return self("delete", "--stage", stage)

    def package(self, stage: str, merge: Path, out: Path) -> str:
        return self("package", "--stage", stage, "--merge-template", str(merge), str(out))


def chalice_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chalice")
    except PackageNotFoundError:
        return "unknown"


def environ_for_chalice() -> dict[str, str]:
    """This process's environment (credentials, profile, ``AWS_ENDPOINT_URL``) for ``chalice``."""
    return dict(os.environ)


class ChaliceApp:
    """``chalice deploy`` and ``chalice delete`` of one stage's functions, from this folder."""

    def __init__(
        self,
        project: Project,
        stage: str,
        handlers: Sequence[str],
        chalice: ChaliceCommand,
        *,
        lambda_client: Callable[[], Any],
        echo: Callable[[str], None],
    ) -> None:
        self.project = project
        self.stage = stage
        self.handlers = list(handlers)
        self._chalice = chalice
        self._lambda = lambda_client
        self._echo = echo

    def deploy(self, *, force: bool = False) -> tuple[bool, str]:
        """``chalice deploy`` unless nothing changed since the last one (``force``: always)."""
        fingerprint = self._fingerprint()
        record = self.project.fingerprint_path(self.stage)
        recorded = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
        functions = self.recorded_functions()
        if (
            not force
            and recorded.get("fingerprint") == fingerprint
            and len(functions) == len(self.handlers)
            and not self._missing_functions(functions)
        ):
            return False, f"{len(functions)} functions, code and config as last deployed"
        for line in self._chalice.deploy(self.stage).splitlines():
            self._echo(f"  {line}")
        functions = self.recorded_functions()
        if len(functions) != len(self.handlers):
            raise StackError(
                f"chalice deploy recorded {len(functions)} functions; app.py has "
                f"{len(self.handlers)}",
                f"look at {self.project.deployed_dir / (self.stage + '.json')}",
            )
        record.write_text(json.dumps({"fingerprint": fingerprint}) + "\n", encoding="utf-8")
        return True, f"{len(functions)} functions deployed"

    def delete(self) -> tuple[bool, str]:
        """``chalice delete`` when functions were deployed from this folder."""
        record = self.project.deployed_dir / f"{self.stage}.json"
        if not self.recorded_functions():
            return False, f"nothing recorded in {record}: no functions deployed from here"
        for line in self._chalice.delete(self.stage).splitlines():
            self._echo(f"  {line}")
        self.project.fingerprint_path(self.stage).unlink(missing_ok=True)
        return True, "functions, roles and rules deleted"

    def recorded_functions(self) -> list[str]:
        """The function ARNs in Chalice's record of the stage (``deployed/<stage>.json``)."""
        record = self.project.deployed_dir / f"{self.stage}.json"
        if not record.is_file():
            return []
        deployed = json.loads(record.read_text(encoding="utf-8"))
        return [
            str(r["lambda_arn"])
            for r in deployed.get("resources", [])
            if r.get("resource_type") == "lambda_function"
        ]

    def _fingerprint(self) -> str:
        versions = (chalice_version(), "{}.{}".format(*sys.version_info[:2]), self._chalice.region)
        return self.project.app_fingerprint(self.stage, versions)

    def _missing_functions(self, functions: Sequence[str]) -> list[str]:
        client = self._lambda()
        missing = []
        for function in functions:
            try:
                client.get_function(FunctionName=function)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
                missing.append(function)
        return missing
