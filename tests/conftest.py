"""Shared test helpers: event fixtures, the shared sample corpus, the rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.rules import RuleSet, load_bundle

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "tests" / "events"
SHARED = ROOT.parent / "shared"
SAMPLES = SHARED / "cloudtrail-samples"


def load_event(name: str) -> dict[str, Any]:
    """A fixture from tests/events/ by name (without .json)."""
    return json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))


def sample_paths() -> list[Path]:
    """The shared CloudTrail samples (empty when ../shared is absent, as in a user's clone)."""
    return sorted(SAMPLES.glob("*.json")) if SAMPLES.is_dir() else []


def load_sample(path: Path) -> list[dict[str, Any]]:
    """A shared sample file's events: a record, a list, a Records wrapper or an envelope."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(document, dict) and isinstance(document.get("Records"), list):
        return list(document["Records"])
    if isinstance(document, list):
        return document
    return [document]


needs_shared = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason="../shared/cloudtrail-samples absent"
)


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return load_bundle()
