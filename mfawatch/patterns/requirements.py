"""What an event pattern requires of an event, as a small boolean tree over field paths.

A rule's EventBridge pattern is turned into a :data:`Condition` that every event the pattern
matches satisfies (the reverse need not hold): a *necessary* condition. Engines that cannot run
our pattern engine (Athena, DuckDB) evaluate it to find candidates; the engine still decides on
every candidate, so a condition that is looser than the pattern costs only a little more data,
never a missed match.

What is kept exactly, for a field at a path: a list of plain strings, ``equals-ignore-case`` and
``prefix`` (an event value must be one of them). Everything else (numbers, booleans, null,
``exists``, ``anything-but``, ``suffix``, ``wildcard``, ``cidr``, ``numeric``) *widens*: the
field's condition becomes :data:`TRUE`. Structure follows the engine
(:mod:`mfawatch.patterns.engine`): the fields of one object are all required (AND); each ``$or``
needs one of its branches (OR); dotted keys (``"a.b"``) name the same field as nesting does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mfawatch.patterns.engine import compile_pattern


@dataclass(frozen=True)
class AnyOf:
    """The field at ``path`` holds one of ``values`` (compared lower-cased when ``ignore_case``)."""

    path: tuple[str, ...]
    values: frozenset[str]
    ignore_case: bool = False


@dataclass(frozen=True)
class StartsWith:
    """The field at ``path`` is a string starting with ``prefix``."""

    path: tuple[str, ...]
    prefix: str


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class OneOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Always:
    """No requirement: any event may match (a widened field, or an empty conjunction)."""


Condition = AnyOf | StartsWith | AllOf | OneOf | Always
TRUE = Always()


def pattern_condition(pattern: Mapping[str, Any]) -> Condition:
    """The necessary condition of one (valid) event pattern; raises if the pattern is invalid."""
    compile_pattern(pattern)  # the engine's validation: never derive from a pattern it rejects
    return _object(pattern, ())


def any_of_rules(patterns: Sequence[Mapping[str, Any]]) -> Condition:
    """The condition an event satisfies when any of ``patterns`` matches it."""
    return _or([pattern_condition(pattern) for pattern in patterns])


def _object(obj: Mapping[str, Any], prefix: tuple[str, ...]) -> Condition:
    parts: list[Condition] = []
    for key, value in obj.items():
        if key == "$or":
            parts.append(_or([_object(branch, prefix) for branch in value]))
            continue
        path = (*prefix, *key.split("."))
        if isinstance(value, Mapping):
            parts.append(_object(value, path))
        else:
            parts.append(_leaf(path, value))
    return _and(parts)


def _leaf(path: tuple[str, ...], items: Sequence[Any]) -> Condition:
    """A value list: the event's value must satisfy one item (OR); any item we cannot keep
    exactly widens the whole list."""
    exact: set[str] = set()
    lowered: set[str] = set()
    prefixes: list[str] = []
    for item in items:
        if type(item) is str:
            exact.add(item)
        elif isinstance(item, Mapping) and len(item) == 1:
            ((op, operand),) = item.items()
            if op == "equals-ignore-case" and type(operand) is str:
                lowered.add(operand.lower())
            elif op == "prefix" and type(operand) is str and operand:
                prefixes.append(operand)
            else:
                return TRUE
        else:
            return TRUE
    parts: list[Condition] = []
    if exact:
        parts.append(AnyOf(path, frozenset(exact)))
    if lowered:
        parts.append(AnyOf(path, frozenset(lowered), ignore_case=True))
    parts.extend(StartsWith(path, prefix) for prefix in prefixes)
    return _or(parts)


def _and(parts: Sequence[Condition]) -> Condition:
    kept = tuple(part for part in parts if not isinstance(part, Always))
    if not kept:
        return TRUE
    return kept[0] if len(kept) == 1 else AllOf(kept)


def _or(parts: Sequence[Condition]) -> Condition:
    if not parts or any(isinstance(part, Always) for part in parts):
        return TRUE
    return parts[0] if len(parts) == 1 else OneOf(tuple(parts))


def paths_of(condition: Condition) -> set[tuple[str, ...]]:
    """Every field path a condition reads."""
    if isinstance(condition, (AnyOf, StartsWith)):
        return {condition.path}
    if isinstance(condition, (AllOf, OneOf)):
        return set().union(*(paths_of(part) for part in condition.parts))
    return set()
