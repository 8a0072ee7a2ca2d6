"""Where the toolkit finds the checkout's files: it runs from a clone of the repository.

The Lambda package never needs these (Chalice ships no repository), so they live here, once.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = REPO_ROOT / "rules"
SUPPRESSIONS_DIR = REPO_ROOT / "suppressions"
#: The folder of the stage configuration (``config.json``) and the stages' IAM policies. The
#: checkout's ``.chalice/`` unless ``MFAWATCH_CHALICE_DIR`` names another one: the test suite
#: points it at its own stages (``tests/stage/``), so a user's deployed config never changes what
#: the tests see.
CHALICE_DIR = Path(os.environ.get("MFAWATCH_CHALICE_DIR") or REPO_ROOT / ".chalice")
CHALICE_CONFIG = CHALICE_DIR / "config.json"
DEPLOY_DIR = REPO_ROOT / "deploy"
DEMO_SCENARIO = REPO_ROOT / "scenarios" / "demo"
