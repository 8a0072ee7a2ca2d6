"""The shipped rule files, loaded once per test process: many tests read them, none changes them
(tests of loading itself call ``load_rules_dir`` on folders of their own)."""

from __future__ import annotations

import functools

from mfawatch.paths import RULES_DIR
from mfawatch.rules.build import RuleFile, load_rules_dir


@functools.cache
def shipped_rule_files() -> tuple[RuleFile, ...]:
    """``rules/`` validated and built, as ``load_rules_dir()`` gives it."""
    return tuple(load_rules_dir(RULES_DIR))
