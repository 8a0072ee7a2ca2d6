"""Offline Amazon EventBridge event-pattern engine (pure Python, stdlib only).

``compile_pattern(pattern)`` validates an EventBridge event pattern the way the
EventBridge API does (``InvalidEventPatternException`` wording is reproduced in
:class:`InvalidPatternError`) and compiles it into a tree of closures over
precomputed structures (frozensets, pre-lowercased sets, compiled regexes,
parsed ``ip_network`` objects), so that :meth:`EventPattern.matches` does as
little work per event as possible: compile once, match many.

Semantics follow the EventBridge user guide ("Content filtering in Amazon
EventBridge event patterns", "Arrays in Amazon EventBridge event patterns") and
were checked against 155 outcomes recorded from the real ``TestEventPattern``
API. Where the guide is silent we follow AWS's open-source matcher
``aws/event-ruler`` (Apache-2.0), which EventBridge is built on: events are
conceptually *flattened* into dotted field names with leaf values, so

* ``{"a": {"b": ...}}`` and ``{"a.b": ...}`` name the same field, both in the
  pattern and in the event;
* objects are not values: only leaves (strings, numbers, booleans, null) are
  matched, and an array contributes each of its elements (any may match);
* fields matched under one array of objects must come from the same element
  ("array consistency").

Validation messages were cross-checked with LocalStack's
``localstack/services/events/event_rule_engine.py`` (Apache-2.0); no code was
copied from it or from event-ruler.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

__all__ = [
    "DEFAULT_MAX_PATTERN_SIZE",
    "EventPattern",
    "InvalidPatternError",
    "compile_pattern",
    "matches",
]

_REASON_PREFIX: Final = "Event pattern is not valid. Reason: "

#: EventBridge's default "Event pattern size" quota is 2048 characters (adjustable to 4096).
DEFAULT_MAX_PATTERN_SIZE: Final = 2048

# The user guide documents numeric matching for values between -5.0e9 and +5.0e9 inclusive.
_NUMERIC_LIMIT: Final = 5.0e9

# event-ruler rejects wildcard patterns whose matching automaton can be in too many states at
# once ("Rule is too complex ..."). AWS does not publish its threshold; see _wildcard_complexity.
_MAX_WILDCARD_COMPLEXITY: Final = 12

_OR_KEY: Final = "$or"
_NUMERIC_OPS: Final = frozenset({"=", "<", "<=", ">", ">="})

Predicate = Callable[[Any], bool]
"""A test on one leaf value from the event (str, int, float, bool or None)."""

_MISSING: Final[Any] = object()


class InvalidPatternError(ValueError):
    """The pattern is not a valid EventBridge event pattern.

    ``str(error)`` is phrased like AWS's ``InvalidEventPatternException`` message
    (``"Event pattern is not valid. Reason: ..."``); ``reason`` holds the part after
    ``Reason:``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(_REASON_PREFIX + reason)
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    # JSON booleans are not numbers, although Python's bool subclasses int.
    return type(value) is int or type(value) is float


def _fmt(value: object) -> str:
    """Render a pattern value the way AWS's JSON parser echoes it in error messages."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _leaves(value: Any, out: list[Any]) -> None:
    """Append the leaf values of an event array (nested arrays flatten; objects are skipped)."""
    for item in value:
        t = type(item)
        if t is list or t is tuple:
            _leaves(item, out)
        elif t is dict or isinstance(item, Mapping):
            continue
        else:
            out.append(item)


def _objects(value: Any, out: list[Any]) -> None:
    """Append the elements of an event array, flattening nested arrays."""
    for item in value:
        if type(item) is list or type(item) is tuple:
            _objects(item, out)
        else:
            out.append(item)


@functools.lru_cache(maxsize=8192)
def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # CloudTrail's sourceIPAddress repeats a lot (and is often "AWS Internal" or a service
    # host name), so parsing is memoised.
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Wildcards
# ---------------------------------------------------------------------------------------------


def _parse_wildcard(text: str) -> list[str | None]:
    """Split a wildcard pattern into literal characters and ``None`` for each unescaped ``*``.

    As in event-ruler, ``\\*`` is a literal star, ``\\\\`` a literal backslash, any other
    escape is rejected, and two unescaped stars in a row are rejected.
    """
    tokens: list[str | None] = []
    i = 0
    previous_star = False
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "*\\":
                raise InvalidPatternError(f"Invalid escape character at pos {i}")
            tokens.append(text[i + 1])
            previous_star = False
            i += 2
            continue
        if ch == "*":
            if previous_star:
                raise InvalidPatternError(f"Consecutive wildcard characters at pos {i}")
            tokens.append(None)
            previous_star = True
        else:
            tokens.append(ch)
            previous_star = False
        i += 1
    return tokens


def _wildcard_complexity(tokens: Sequence[str | None], cap: int) -> int:
    """Largest number of automaton positions a wildcard pattern can occupy at once.

    This mirrors the idea behind event-ruler's ``MachineComplexityEvaluator`` (the worst-case
    number of simultaneously live wildcard-pattern states for any input) on a position
    automaton: position ``i`` is "about to match token i"; a star position loops on any
    character and may also be skipped. The subset construction is explored breadth-first
    over the pattern's own characters plus one "other" character, capped for speed.
    """
    alphabet: list[str | None] = [*sorted({t for t in tokens if t is not None}), None]
    start = _star_closure({0}, tokens)
    seen_sets = {start}
    queue = [start]
    worst = len(start)
    while queue and len(seen_sets) < 4096:
        current = queue.pop()
        for ch in alphabet:
            state = _wildcard_step(current, ch, tokens)
            if state and state not in seen_sets:
                seen_sets.add(state)
                queue.append(state)
                worst = max(worst, len(state))
                if worst >= cap:
                    return worst
    return worst


def _star_closure(states: set[int], tokens: Sequence[str | None]) -> frozenset[int]:
    """``states`` and every position reachable from them by skipping stars."""
    n = len(tokens)
    stack = list(states)
    seen = set(states)
    while stack:
        i = stack.pop()
        if i < n and tokens[i] is None and i + 1 not in seen:
            seen.add(i + 1)
            stack.append(i + 1)
    return frozenset(seen)


def _wildcard_step(
    current: frozenset[int], ch: str | None, tokens: Sequence[str | None]
) -> frozenset[int]:
    """The positions after reading ``ch`` (None: a character the pattern does not name)."""
    n = len(tokens)
    nxt: set[int] = set()
    for i in current:
        if i >= n:
            continue
        token = tokens[i]
        if token is None:
            nxt.add(i)
        elif ch is not None and token == ch:
            nxt.add(i + 1)
    return _star_closure(nxt, tokens) if nxt else frozenset()


def _wildcard_regex(tokens: Sequence[str | None]) -> str:
    # "*" stands for zero or more characters; everything else is literal.
    return "".join(".*" if t is None else re.escape(t) for t in tokens)


def _validated_wildcard(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidPatternError("wildcard match pattern must be a string")
    tokens = _parse_wildcard(value)
    if _wildcard_complexity(tokens, _MAX_WILDCARD_COMPLEXITY) >= _MAX_WILDCARD_COMPLEXITY:
        raise InvalidPatternError(
            "Rule is too complex - try using fewer wildcard characters or fewer repeating "
            "character sequences after a wildcard character"
        )
    return _wildcard_regex(tokens)


def _compile_regexes(regexes: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{r})" for r in regexes), re.DOTALL)


# ---------------------------------------------------------------------------------------------
# Leaf (value list) compilation
# ---------------------------------------------------------------------------------------------


class _LeafSpec:
    """Accumulates the alternatives of one value list (``"field": [ ... ]``), ORed together."""

    def __init__(self) -> None:
        self.strings: set[str] = set()
        self.numbers: set[int | float] = set()
        self.match_true = False
        self.match_false = False
        self.match_null = False
        self.exists_true = False
        self.exists_false = False
        self.prefixes: list[str] = []
        self.suffixes: list[str] = []
        self.lower_equals: set[str] = set()
        self.lower_prefixes: list[str] = []
        self.lower_suffixes: list[str] = []
        self.wildcards: list[str] = []
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.ranges: list[Callable[[float], bool]] = []
        # anything-but: these see every present leaf value, including null and booleans.
        self.negations: list[Predicate] = []

    def add(self, item: object) -> None:
        if item is None:
            self.match_null = True
        elif item is True:
            self.match_true = True
        elif item is False:
            self.match_false = True
        elif isinstance(item, str):
            self.strings.add(item)
        elif _is_number(item):
            self.numbers.add(_check_numeric_limit(item))
        elif isinstance(item, dict):
            self._add_operator(item)
        else:
            raise InvalidPatternError("Match value must be String, number, true, false, or null")

    def _add_operator(self, expr: dict[str, Any]) -> None:
        if not expr:
            raise InvalidPatternError("Match expression name not found")
        if len(expr) != 1:
            raise InvalidPatternError("Only one key allowed in match expression")
        ((op, value),) = expr.items()
        add = _OPERATORS.get(op)
        if add is None:
            # Operator names are case-sensitive: {"EXISTS": true} is rejected by AWS.
            raise InvalidPatternError(f"Unrecognized match type {op}")
        add(self, op, value)

    def _add_equals_ignore_case(self, _op: str, value: object) -> None:
        if not isinstance(value, str):
            raise InvalidPatternError("equals-ignore-case match pattern must be a string")
        self.lower_equals.add(value.lower())

    def _add_wildcard(self, _op: str, value: object) -> None:
        self.wildcards.append(_validated_wildcard(value))

    def _add_anything_but(self, _op: str, value: object) -> None:
        self.negations.append(_compile_anything_but(value))

    def _add_numeric(self, _op: str, value: object) -> None:
        self.ranges.append(_compile_numeric(value))

    def _add_exists(self, _op: str, value: object) -> None:
        if value is True:
            self.exists_true = True
        elif value is False:
            self.exists_false = True
        else:
            raise InvalidPatternError("exists match pattern must be either true or false.")

    def _add_cidr(self, _op: str, value: object) -> None:
        self.networks.append(_compile_cidr(value))

    def _add_prefix_suffix(self, op: str, value: object) -> None:
        if isinstance(value, str):
            # An empty prefix/suffix is allowed here and matches every string value.
            (self.prefixes if op == "prefix" else self.suffixes).append(value)
            return
        if isinstance(value, dict) and len(value) == 1 and "equals-ignore-case" in value:
            # {"prefix": {"equals-ignore-case": "EventB"}} matches EVENTB..., eventb..., etc.
            inner = value["equals-ignore-case"]
            if not isinstance(inner, str):
                raise InvalidPatternError(f"{op} match pattern must be a string")
            target = self.lower_prefixes if op == "prefix" else self.lower_suffixes
            target.append(inner.lower())
            return
        raise InvalidPatternError(f"{op} match pattern must be a string")

    def build(self) -> _Leaf:
        return _Leaf(self)


#: The match operators of a value list, each adding itself to the spec.
_OPERATORS: dict[str, Callable[[_LeafSpec, str, object], None]] = {
    "prefix": _LeafSpec._add_prefix_suffix,
    "suffix": _LeafSpec._add_prefix_suffix,
    "equals-ignore-case": _LeafSpec._add_equals_ignore_case,
    "wildcard": _LeafSpec._add_wildcard,
    "anything-but": _LeafSpec._add_anything_but,
    "numeric": _LeafSpec._add_numeric,
    "exists": _LeafSpec._add_exists,
    "cidr": _LeafSpec._add_cidr,
}


class _Leaf:
    """A compiled value list: ``test(value)`` decides whether a field's event value satisfies it.

    ``match_missing`` says whether a field that is absent satisfies it.
    """

    __slots__ = ("exact_strings", "match_missing", "test")

    def __init__(self, spec: _LeafSpec) -> None:
        # A field that is absent - or that only holds objects or an empty array, which
        # flatten to no value at all - matches only {"exists": false}.
        self.match_missing: bool = spec.exists_false
        # {"exists": true} matches any present leaf value, null included.
        scalar = _always if spec.exists_true else _scalar_test(spec)
        self.test: Predicate = _leaf_test(scalar, self.match_missing)
        # For a plain list of strings (the commonest value list, e.g. "source": ["aws.signin"])
        # the object matcher tests a string field against this set inline.
        self.exact_strings: frozenset[str] | None = (
            frozenset(spec.strings) if scalar is not _always and _only_strings(spec) else None
        )


def _only_strings(spec: _LeafSpec) -> bool:
    return bool(spec.strings) and not (
        spec.numbers
        or spec.match_true
        or spec.match_false
        or spec.match_null
        or spec.exists_true
        or spec.exists_false
        or spec.prefixes
        or spec.suffixes
        or spec.lower_equals
        or spec.lower_prefixes
        or spec.lower_suffixes
        or spec.wildcards
        or spec.networks
        or spec.ranges
        or spec.negations
    )


def _leaf_test(scalar: Predicate, match_missing: bool) -> Predicate:
    def leaf(value: Any) -> bool:
        t = type(value)
        # Checks ordered by frequency; strings dominate CloudTrail fields.
        if t is str:
            return scalar(value)
        if value is _MISSING or t is dict:
            return match_missing
        if t is list or t is tuple:
            scalars: list[Any] = []
            _leaves(value, scalars)
            if not scalars:
                return match_missing
            return any(map(scalar, scalars))
        if isinstance(value, Mapping):
            return match_missing
        return scalar(value)

    return leaf


def _all_of(tests: Sequence[Predicate]) -> Predicate:
    if len(tests) == 1:
        return tests[0]
    return lambda v: all(test(v) for test in tests)


def _always(_value: Any) -> bool:
    return True


def _never(_value: Any) -> bool:
    return False


def _scalar_test(spec: _LeafSpec) -> Predicate:
    """Build the fastest predicate for one leaf value that covers everything in ``spec``."""
    other_strings = bool(spec.prefixes or spec.suffixes or spec.wildcards or spec.networks)
    lower = bool(spec.lower_equals or spec.lower_prefixes or spec.lower_suffixes)
    has_other = bool(
        spec.numbers
        or spec.ranges
        or spec.negations
        or spec.match_null
        or spec.match_true
        or spec.match_false
    )
    # Fast paths for the overwhelmingly common shapes: a plain list of strings (e.g.
    # "source": ["aws.signin"]) or a single equals-ignore-case.
    if not has_other and not other_strings and not lower:
        return _exact_strings(frozenset(spec.strings)) if spec.strings else _never
    if not has_other and not spec.strings and not other_strings:
        return _ignore_case(spec)
    return _general(spec)


def _exact_strings(strings: frozenset[str]) -> Predicate:
    def exact_strings(v: Any) -> bool:
        # Strings never compare equal to numbers, booleans or null, so no type check.
        return v in strings

    return exact_strings


def _ignore_case(spec: _LeafSpec) -> Predicate:
    lower_equals = frozenset(spec.lower_equals)
    lower_prefixes = tuple(spec.lower_prefixes)
    lower_suffixes = tuple(spec.lower_suffixes)

    def ignore_case(v: Any) -> bool:
        if type(v) is not str:
            return False
        lv = v.lower()
        return (
            lv in lower_equals
            or (bool(lower_prefixes) and lv.startswith(lower_prefixes))
            or (bool(lower_suffixes) and lv.endswith(lower_suffixes))
        )

    return ignore_case


def _general(spec: _LeafSpec) -> Predicate:
    """Any mix of alternatives: strings, numbers, constants, negations (anything-but)."""
    string_test = _string_test(spec)
    number_test = _number_test(spec)
    negations = tuple(spec.negations)
    match_null, match_true, match_false = spec.match_null, spec.match_true, spec.match_false

    def general(v: Any) -> bool:
        t = type(v)
        if t is str:
            if string_test is not None and string_test(v):
                return True
        elif t is int or t is float:
            # Numbers compare by value: 300, 300.0 and 3.0e2 are the same number.
            if number_test is not None and number_test(v):
                return True
        elif (
            (v is None and match_null) or (v is True and match_true) or (v is False and match_false)
        ):
            return True
        return any(neg(v) for neg in negations)

    return general


def _string_test(spec: _LeafSpec) -> Callable[[str], bool] | None:
    """The string alternatives' test (None: there are none, as in ``[{"exists": false},
    {"anything-but": [...]}]``, so that such a list costs no call per value)."""
    lower = bool(spec.lower_equals or spec.lower_prefixes or spec.lower_suffixes)
    if not lower and not any(
        (spec.strings, spec.prefixes, spec.suffixes, spec.wildcards, spec.networks)
    ):
        return None
    strings = frozenset(spec.strings)
    prefixes = tuple(spec.prefixes)
    suffixes = tuple(spec.suffixes)
    lower_test = _ignore_case(spec) if lower else None
    wildcard = _compile_regexes(spec.wildcards).fullmatch if spec.wildcards else None
    networks = tuple(spec.networks)

    def string_test(v: str) -> bool:
        if v in strings or (prefixes and v.startswith(prefixes)):
            return True
        if (suffixes and v.endswith(suffixes)) or (lower_test is not None and lower_test(v)):
            return True
        if wildcard is not None and wildcard(v) is not None:
            return True
        if networks:
            ip = _parse_ip(v)
            if ip is not None:
                for net in networks:
                    if ip.version == net.version and ip in net:
                        return True
        return False

    return string_test


def _number_test(spec: _LeafSpec) -> Callable[[float], bool] | None:
    if not (spec.numbers or spec.ranges):
        return None
    numbers = frozenset(spec.numbers)
    ranges = tuple(spec.ranges)

    def number_test(v: float) -> bool:
        if v in numbers:
            return True
        if ranges:
            fv = float(v)
            return any(r(fv) for r in ranges)
        return False

    return number_test


# ---------------------------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------------------------


def _check_numeric_limit(value: Any) -> Any:
    if not math.isfinite(value) or abs(value) > _NUMERIC_LIMIT:
        # The user guide limits numeric matching to [-5.0e9, 5.0e9]; event-ruler cannot
        # represent values outside that range as comparable numbers.
        raise InvalidPatternError(
            f"Numeric value {_fmt(value)} out of range: must be between -5.0E9 and 5.0E9"
        )
    return value


def _compile_numeric(value: object) -> Callable[[float], bool]:
    """Validate ``{"numeric": [...]}`` and return a range test on a float."""
    if not isinstance(value, list):
        raise InvalidPatternError("Value of numeric must be an array.")
    if not value:
        raise InvalidPatternError("Invalid member in numeric match: ]")
    op = value[0]
    if not isinstance(op, str):
        raise InvalidPatternError(f"Invalid member in numeric match: {_fmt(op)}")
    if op not in _NUMERIC_OPS:
        raise InvalidPatternError(f"Unrecognized numeric range operator: {op}")
    if len(value) < 2 or not _is_number(value[1]):
        raise InvalidPatternError(f"Value of {'equals' if op == '=' else op} must be numeric")
    first = float(_check_numeric_limit(value[1]))
    if len(value) == 2:
        return _single_bound(op, first)
    return _numeric_range(op, first, value)


def _numeric_range(op: str, low: float, value: list[Any]) -> Callable[[float], bool]:
    """``[">" or ">=", low, "<" or "<=", high]``, checked from its third member on."""
    # Only a lower bound (> or >=) may be followed by an upper bound (< or <=).
    if op not in (">", ">="):
        raise InvalidPatternError("Too many elements in numeric expression")
    op2 = value[2]
    if not isinstance(op2, str):
        raise InvalidPatternError(f"Bad value in numeric range: {_fmt(op2)}")
    if op2 not in ("<", "<="):
        raise InvalidPatternError(f"Bad numeric range operator: {op2}")
    if len(value) < 4 or not _is_number(value[3]):
        raise InvalidPatternError(f"Value of {op2} must be numeric")
    high = float(_check_numeric_limit(value[3]))
    if high <= low:
        raise InvalidPatternError("Bottom must be less than top")
    if len(value) > 4:
        raise InvalidPatternError("Too many terms in numeric range expression")
    if op == ">":
        if op2 == "<":
            return lambda v: low < v < high
        return lambda v: low < v <= high
    if op2 == "<":
        return lambda v: low <= v < high
    return lambda v: low <= v <= high


def _single_bound(op: str, bound: float) -> Callable[[float], bool]:
    if op == "=":
        return lambda v: v == bound
    if op == "<":
        return lambda v: v < bound
    if op == "<=":
        return lambda v: v <= bound
    if op == ">":
        return lambda v: v > bound
    return lambda v: v >= bound


def _compile_cidr(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not isinstance(value, str):
        # Sic: AWS reports a non-string cidr with the prefix message.
        raise InvalidPatternError("prefix match pattern must be a string")
    parts = value.split("/")
    if len(parts) != 2:
        raise InvalidPatternError("Malformed CIDR, one '/' required")
    address, mask = parts
    if not mask.isascii() or not mask.isdigit():
        raise InvalidPatternError("Malformed CIDR, mask bits must be an integer")
    ip = _parse_ip(address)
    if ip is None:
        raise InvalidPatternError(f"Nonstandard IP address: {address}")
    if int(mask) > ip.max_prefixlen:
        raise InvalidPatternError(
            f"Malformed CIDR, mask bits must be between 0 and {ip.max_prefixlen}"
        )
    # Host bits are ignored (10.0.0.7/24 means 10.0.0.0/24), as event-ruler masks them.
    return ipaddress.ip_network(f"{ip}/{int(mask)}", strict=False)


def _compile_anything_but(value: object) -> Predicate:
    """Compile ``{"anything-but": ...}``.

    It matches any *present* leaf value - including null, booleans and values of another
    type - that is not excluded; a missing field never matches (AWS-validated).
    """
    if isinstance(value, dict):
        return _anything_but_operator(value)
    if isinstance(value, list):
        strings, numbers = _anything_but_list(value)
    elif isinstance(value, str):
        strings, numbers = {value}, set()
    elif _is_number(value):
        strings, numbers = set(), {_check_numeric_limit(value)}
    else:
        raise InvalidPatternError(
            "Value of anything-but must be an array or single string/number value."
        )

    excluded_strings = frozenset(strings)
    excluded_numbers = frozenset(numbers)

    def anything_but(v: Any) -> bool:
        t = type(v)
        if t is str:
            return v not in excluded_strings
        if t is int or t is float:
            return v not in excluded_numbers
        return True

    return anything_but


def _anything_but_list(value: list[Any]) -> tuple[set[str], set[int | float]]:
    """The excluded strings and numbers of an anything-but list (one type only)."""
    strings: set[str] = set()
    numbers: set[int | float] = set()
    for item in value:
        if isinstance(item, str):
            strings.add(item)
        elif _is_number(item):
            numbers.add(_check_numeric_limit(item))
        else:
            raise InvalidPatternError(
                "Inside anything but list, start|null|boolean is not supported."
            )
    if bool(strings) == bool(numbers):
        raise InvalidPatternError(
            "Inside anything but list, either all values are number or string, "
            "mixed type is not supported"
        )
    return strings, numbers


def _anything_but_operator(value: dict[str, Any]) -> Predicate:
    """``{"anything-but": {"prefix" | "suffix" | "equals-ignore-case" | "wildcard": ...}}``."""
    if not value:
        raise InvalidPatternError("Anything-But expression name not found")
    if len(value) != 1:
        raise InvalidPatternError("Only one key allowed in match expression")
    ((op, inner),) = value.items()
    if op in ("prefix", "suffix"):
        texts = _anything_but_strings(
            inner, "prefix/suffix match pattern must be a string", allow_dict=False
        )
        if any(t == "" for t in texts):
            raise InvalidPatternError("Null prefix/suffix not allowed")
        affixes = tuple(texts)
        if op == "prefix":
            return lambda v: type(v) is not str or not v.startswith(affixes)
        return lambda v: type(v) is not str or not v.endswith(affixes)
    if op == "equals-ignore-case":
        texts = _anything_but_strings(
            inner,
            "Inside anything-but/equals-ignore-case list, "
            "number|start|null|boolean is not supported.",
            allow_dict=True,
        )
        lowered = frozenset(t.lower() for t in texts)
        return lambda v: type(v) is not str or v.lower() not in lowered
    if op == "wildcard":
        texts = _anything_but_strings(
            inner, "wildcard match pattern must be a string", allow_dict=True
        )
        pattern = _compile_regexes([_validated_wildcard(t) for t in texts])
        return lambda v: type(v) is not str or pattern.fullmatch(v) is None
    raise InvalidPatternError(f"Unsupported anything-but pattern: {op}")


def _anything_but_strings(value: object, message: str, *, allow_dict: bool) -> list[str]:
    """A string or non-empty list of strings nested in anything-but."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, dict) and not allow_dict:
        # e.g. {"anything-but": {"prefix": {"equals-ignore-case": "x"}}} is not supported.
        raise InvalidPatternError(
            "Value of anything-but must be an array or single string/number value."
        )
    raise InvalidPatternError(message)


# ---------------------------------------------------------------------------------------------
# Object (field tree) compilation
# ---------------------------------------------------------------------------------------------


class _NodeBuilder:
    """Pattern object with dotted keys split into nested segments and same-path keys merged."""

    def __init__(self) -> None:
        self.leaves: dict[str, list[_Leaf]] = {}
        self.children: dict[str, _NodeBuilder] = {}
        self.ors: list[list[_NodeBuilder]] = []

    def child(self, segments: Sequence[str]) -> _NodeBuilder:
        node = self
        for seg in segments:
            node = node.children.setdefault(seg, _NodeBuilder())
        return node

    def paths(self) -> list[str]:
        """Every dotted path from this node to a field below it (including via ``$or``)."""
        out: list[str] = list(self.leaves)
        for seg, sub in self.children.items():
            out.append(seg)
            out.extend(f"{seg}.{p}" for p in sub.paths())
        for alternatives in self.ors:
            for alt in alternatives:
                out.extend(alt.paths())
        return list(dict.fromkeys(out))

    def build(self) -> _Node:
        return _Node(self)


class _Node:
    """A compiled pattern object.

    ``match_object(obj)`` matches it against one event object; ``match_value(value)`` against
    whatever the event holds at its path (an object, an array, a leaf value or nothing).
    """

    __slots__ = ("match_missing", "match_object", "match_value")

    def __init__(self, builder: _NodeBuilder) -> None:
        leaves = list(builder.leaves.items())
        children = [(seg, sub.build(), sub.paths()) for seg, sub in builder.children.items()]
        ors = [[alt.build() for alt in alternatives] for alternatives in builder.ors]
        # Would an event with nothing at this point satisfy the pattern (only possible
        # through {"exists": false})? Precomputed so absent sub-trees cost nothing.
        self.match_missing: bool = (
            all(leaf.match_missing for _, group in leaves for leaf in group)
            and all(node.match_missing for _, node, _ in children)
            and all(any(alt.match_missing for alt in alts) for alts in ors)
        )
        self.match_object: Callable[[Mapping[str, Any]], bool] = _object_test(
            tuple(
                (
                    seg,
                    _all_of([leaf.test for leaf in group]),
                    group[0].exact_strings if len(group) == 1 else None,
                )
                for seg, group in leaves
            ),
            tuple(
                (
                    seg,
                    node.match_value,
                    tuple(f"{seg}.{p}" for p in paths),
                    tuple((f"{seg}.{p}", p) for p in paths),
                )
                for seg, node, paths in children
            ),
            tuple(tuple(alt.match_object for alt in alts) for alts in ors),
        )
        self.match_value: Predicate = _value_test(self.match_object, self.match_missing)


def _object_test(
    leaf_fields: tuple[tuple[str, Predicate, frozenset[str] | None], ...],
    children: tuple[tuple[str, Predicate, tuple[str, ...], tuple[tuple[str, str], ...]], ...],
    ors: tuple[tuple[Callable[[Mapping[str, Any]], bool], ...], ...],
) -> Callable[[Mapping[str, Any]], bool]:
    missing = _MISSING

    def match_object(obj: Mapping[str, Any]) -> bool:
        get = obj.get
        # Leaf fields first (in pattern order, e.g. "source"): cheapest and most selective.
        for seg, test, exact in leaf_fields:
            value = get(seg, missing)
            if exact is not None and type(value) is str:
                if value not in exact:
                    return False
            elif not test(value):
                return False
        for seg, match_value, dotted_keys, dotted in children:
            value = get(seg, missing)
            # The event may spell nested fields with dots ({"a.b": 1} is field a.b just like
            # {"a": {"b": 1}}); probing the few dotted names the pattern can use is cheap.
            if any(map(obj.__contains__, dotted_keys)):
                value = _with_dotted_fields(value, obj, dotted)
            if not match_value(value):
                return False
        return not ors or all(any(alt(obj) for alt in alts) for alts in ors)

    return match_object


def _value_test(
    match_object: Callable[[Mapping[str, Any]], bool], match_missing: bool
) -> Predicate:
    def match_value(value: Any) -> bool:
        t = type(value)
        if t is dict:
            return match_object(value)
        if t is list or t is tuple:
            # Any element of an array of objects may match, but all fields of this
            # sub-pattern must then come from that same element (array consistency).
            elements: list[Any] = []
            _objects(value, elements)
            if not elements:
                return match_missing
            return any(map(match_value, elements))
        if value is not _MISSING and isinstance(value, Mapping):
            return match_object(value)
        # Missing, or a leaf value where the pattern expects an object: no fields below.
        return match_missing

    return match_value


def _with_dotted_fields(
    value: Any, obj: Mapping[str, Any], dotted: Sequence[tuple[str, str]]
) -> Any:
    """Merge event keys such as ``"a.b"`` into the value of ``"a"`` as field ``"b"``."""
    virtual: dict[str, Any] = {rest: obj[key] for key, rest in dotted if key in obj}
    if value is _MISSING or not isinstance(value, (Mapping, list, tuple)):
        return virtual
    if isinstance(value, Mapping):
        merged = dict(value)
        for rest, extra in virtual.items():
            # The same flattened field spelled two ways holds both values.
            merged[rest] = [merged[rest], extra] if rest in merged else extra
        return merged
    return [*value, virtual]


def _compile_object(obj: Mapping[str, Any], builder: _NodeBuilder, prefix: tuple[str, ...]) -> None:
    if not obj:
        raise InvalidPatternError("Empty objects are not allowed")
    for key, value in obj.items():
        if not isinstance(key, str):
            raise InvalidPatternError("Filter is not an object")
        if key == _OR_KEY:
            builder.child(prefix).ors.append(_compile_or(value))
            continue
        segments = (*prefix, *key.split("."))
        if isinstance(value, dict):
            _compile_object(value, builder, segments)
        elif isinstance(value, list):
            if not value:
                raise InvalidPatternError("Empty arrays are not allowed")
            spec = _LeafSpec()
            for item in value:
                spec.add(item)
            parent = builder.child(segments[:-1])
            parent.leaves.setdefault(segments[-1], []).append(spec.build())
        else:
            raise InvalidPatternError(f'"{key}" must be an object or an array')


def _compile_or(value: object) -> list[_NodeBuilder]:
    if not isinstance(value, list):
        raise InvalidPatternError("It must be an Array followed with $or.")
    alternatives: list[_NodeBuilder] = []
    for item in value:
        if not isinstance(item, dict):
            raise InvalidPatternError("Only JSON object is allowed in array of $or relationship.")
        alt = _NodeBuilder()
        _compile_object(item, alt, ())
        alternatives.append(alt)
    if len(alternatives) < 2:
        raise InvalidPatternError("There must have at least 2 Objects in $or relationship.")
    return alternatives


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


class EventPattern:
    """A validated, compiled EventBridge event pattern. Create with :func:`compile_pattern`."""

    __slots__ = ("_match", "pattern")

    def __init__(self, pattern: dict[str, Any], root: _Node) -> None:
        self.pattern: dict[str, Any] = pattern
        self._match = root.match_object

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Return True when ``event`` (a decoded JSON object) matches the pattern."""
        if type(event) is dict or isinstance(event, Mapping):
            return self._match(event)
        return False

    def __call__(self, event: Mapping[str, Any]) -> bool:
        return self.matches(event)

    def __repr__(self) -> str:
        return f"EventPattern({json.dumps(self.pattern, sort_keys=True)})"


#: Compiled patterns by their JSON text: a compiled tree is immutable (closures over tuples), so
#: one serves every caller of the same pattern (a replay compiles each rule once per run, the
#: rule commands once per case). Only valid patterns get here; cleared when full.
_COMPILED: dict[str, _Node] = {}
_COMPILED_MAX = 1024
_MAX_CACHED_DEPTH = 64
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_json(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is made of JSON's own types only (dict, list, str, number, bool, null),
    so that its JSON text names it: a tuple or a Mapping subclass is not cached (a tuple is no
    array to the validation, whatever its JSON text says)."""
    if depth > _MAX_CACHED_DEPTH:
        return False
    t = type(value)
    if t is dict:
        return all(type(k) is str and _is_json(v, depth + 1) for k, v in value.items())
    if t is list:
        return all(_is_json(v, depth + 1) for v in value)
    return t in _JSON_SCALARS


def compile_pattern(
    pattern: Mapping[str, Any] | str | bytes,
    *,
    max_size: int | None = DEFAULT_MAX_PATTERN_SIZE,
) -> EventPattern:
    """Validate and compile an EventBridge event pattern.

    ``pattern`` is a JSON object, given decoded (a dict) or as JSON text. ``max_size`` is
    the pattern-size quota in characters (EventBridge's default is 2048, adjustable up to
    4096); a dict is measured in its compact JSON form. Pass ``None`` to skip the check.

    Raises :class:`InvalidPatternError` with AWS's wording when the pattern is invalid.
    """
    if isinstance(pattern, (str, bytes)):
        text = pattern.decode() if isinstance(pattern, bytes) else pattern
        try:
            decoded = json.loads(text)
        except (ValueError, RecursionError):
            # AWS reports the Jackson parser's position here; we cannot reproduce that.
            raise InvalidPatternError("Filter is not valid JSON") from None
    else:
        decoded = pattern
        text = None
    if not isinstance(decoded, Mapping):
        raise InvalidPatternError("Filter is not an object")
    plain = _is_json(decoded)
    if text is None and (max_size is not None or plain):
        text = json.dumps(decoded, separators=(",", ":"), ensure_ascii=False)
    if max_size is not None and text is not None and len(text) > max_size:
        raise InvalidPatternError(
            f"Event pattern is {len(text)} characters, exceeding the maximum of {max_size}"
        )
    # The text of plain JSON names the pattern: compile it once (a tuple, say, is checked anew).
    key = text if plain else None
    root = _COMPILED.get(key) if key is not None else None
    if root is None:
        builder = _NodeBuilder()
        _compile_object(decoded, builder, ())
        root = builder.build()
        if key is not None:
            if len(_COMPILED) >= _COMPILED_MAX:
                _COMPILED.clear()
            _COMPILED[key] = root
    return EventPattern(dict(decoded), root)


def matches(pattern: Mapping[str, Any] | str | EventPattern, event: Mapping[str, Any]) -> bool:
    """Convenience: compile ``pattern`` (unless already compiled) and match one ``event``.

    Compile once with :func:`compile_pattern` when matching many events.
    """
    compiled = pattern if isinstance(pattern, EventPattern) else compile_pattern(pattern)
    return compiled.matches(event)
