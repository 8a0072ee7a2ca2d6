"""Where the toolkit finds the checkout's files: it runs from a clone of the repository.

The Lambda package never needs these (Chalice ships no repository), so they live here, once.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = REPO_ROOT / "rules"
CHALICE_CONFIG = REPO_ROOT / ".chalice" / "config.json"
DEPLOY_DIR = REPO_ROOT / "deploy"
DEMO_SCENARIO = REPO_ROOT / "scenarios" / "demo"
