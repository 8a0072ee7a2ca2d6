"""The installed entry points: ``python -m mfawatch`` and the ``mfawatch`` console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("how", ["python -m mfawatch", "mfawatch"])
def test_entry_point_runs_the_command_line(how: str) -> None:
    script = shutil.which("mfawatch", path=str(Path(sys.executable).parent))
    if how == "mfawatch" and script is None:
        pytest.skip("the console script is not installed beside this Python")
    command = [sys.executable, "-m", "mfawatch"] if how != "mfawatch" else [str(script)]
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "replay" in done.stdout
    assert "selftest" in done.stdout
