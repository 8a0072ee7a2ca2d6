"""Keys of the state store (chalicelib.core.state): bounded and distinct whatever the input."""

from __future__ import annotations

from chalicelib.core.state import KeyKind, make_key


def test_long_values_that_share_a_prefix_make_different_keys() -> None:
    prefix = "x" * 2500
    keys = {make_key(KeyKind.PRINCIPAL, "111122223333", prefix + tail) for tail in "ab"}
    assert len(keys) == 2
    # A raw value shaped like a bounded one is bounded too: no input can take another's key.
    forged = make_key(KeyKind.PRINCIPAL, "111122223333", next(iter(keys)).split("#", 2)[2])
    assert forged not in keys
    assert make_key(KeyKind.PRINCIPAL, "111122223333", "alice") == "prn#111122223333#alice"
    assert all(len(k.encode()) <= 300 + len("prn#111122223333#") for k in keys)
