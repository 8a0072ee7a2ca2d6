"""Window summaries: a summary says which of its repeats a suppression covers and never holds
the others."""

from __future__ import annotations

from typing import Any

from chalicelib.core.notifications import KIND_STORM, KIND_SUMMARY
from chalicelib.core.suppressions import Suppressions
from tests.support.events import signed_in
from tests.support.suppressions import LATER, OWNER, REASON, counted, run, suppression

WITHOUT_MFA = "iam-console-success-without-mfa"


LABEL = f"office-vpn ({OWNER}, {REASON})"


def without_mfa(event_id: str, offset: float, ip: str) -> dict[str, object]:
    """A console sign-in of IAM user alice without MFA (the rule's key leaves the IP out)."""
    envelope: dict[str, Any] = signed_in(event_id, offset, ip=ip)
    envelope["detail"]["additionalEventData"]["MFAUsed"] = "No"
    return envelope


def test_a_summary_says_which_of_its_repeats_are_suppressed_and_never_holds_the_others() -> None:
    office = Suppressions(
        [
            suppression(
                "office-vpn",
                LATER,
                match={"rules": [WITHOUT_MFA], "source_cidrs": ["203.0.113.0/24"]},
            )
        ]
    )
    events: list[tuple[str, dict[str, object], float]] = [
        (WITHOUT_MFA, without_mfa("vpn-1", 0, "203.0.113.5"), 0.0),
        (WITHOUT_MFA, without_mfa("vpn-2", 60, "203.0.113.6"), 60.0),
        (WITHOUT_MFA, without_mfa("cafe", 120, "198.51.100.7"), 120.0),
    ]
    sent = run(office, events)
    # The office sign-in that opened the window is suppressed (the digest counts it); the
    # window's summary counts the other two, goes out for the sign-in from the cafe, and says
    # that the second office sign-in is suppressed.
    (summary,) = [n for n in sent if n.kind == KIND_SUMMARY]
    assert (summary.count, summary.source_ip) == (2, "198.51.100.7")
    assert summary.title == ("2 more sign-ins without MFA for alice from 198.51.100.7")
    assert summary.summary.endswith(
        f"Of these, 1 suppressed by {LABEL}. The alert that opened the window was suppressed "
        f"by {LABEL}."
    )
    (digest,) = [n for n in sent if n.kind == KIND_STORM]
    assert digest.summary.endswith(f"1 suppressed by {LABEL}.")
    assert counted(sent) == 3
