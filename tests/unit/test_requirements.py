"""What an event pattern requires of an event: a feature a necessary condition cannot express
widens its field to anything."""

from __future__ import annotations

from typing import Any

import pytest

from mfawatch.patterns.requirements import AnyOf, pattern_condition


@pytest.mark.parametrize(
    "leaf",
    [
        [{"numeric": [">", 1]}],
        [{"anything-but": "x"}],
        [{"exists": True}],
        [{"wildcard": "a*b"}],
        ["Failure", {"suffix": "x"}],
    ],
)
def test_a_feature_sql_cannot_express_widens_the_field(leaf: list[Any]) -> None:
    pattern = {"detail": {"eventName": ["ConsoleLogin"], "responseElements": {"x": leaf}}}
    assert pattern_condition(pattern) == AnyOf(("detail", "eventName"), frozenset({"ConsoleLogin"}))
