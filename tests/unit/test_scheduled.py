"""A scheduled look's arithmetic: which group index entries are late, which are new, and the
band it leaves for the next look."""

from __future__ import annotations

from chalicelib.pipeline.scheduled import Band, split_found


def test_a_look_tells_late_entries_from_counted_ones_by_its_band() -> None:
    def entry(key: str, at: float) -> dict[str, object]:
        return {"pk": key, "grp_at": at}

    found = [entry("a", 100.0), entry("late", 150.0), entry("b", 180.0), entry("new", 250.0)]
    # The previous look cut at 200 and counted a and b (late was not visible yet).
    split = split_found(found, 200.0, Band(("a", "b"), 2), 300.0)
    assert [i["pk"] for i in split.late] == ["late"]
    assert [i["pk"] for i in split.ready] == ["new"]
    assert split.unnamed == 0 and not split.settling
    assert split.band(300.0) == Band(("a", "late", "b", "new"), 4)
    # A band too big to name its keys still counts how many are new.
    capped = split_found(found, 200.0, Band(("a",), 2), 300.0)
    assert capped.late == [] and capped.unnamed == 1
