"""The campaign step: a campaign's escalation names the members a suppression covers."""

from __future__ import annotations

from chalicelib.core.notifications import KIND_ALERT
from tests.support.events import IAM_FAILURE, failed_mfa
from tests.support.suppressions import OWNER, REASON, counted, pentest, run


def test_a_campaign_names_the_members_a_suppression_covers() -> None:
    events = [
        (IAM_FAILURE, failed_mfa(user, 30.0 * i, user=user), 30.0 * i)
        for i, user in enumerate(["alice", "bob", "carol", "dave"])
    ]
    sent = run(pentest(), events)
    spray, trailing = [n for n in sent if n.principal_type == "campaign"]
    clause = (
        f" Of these principals, 1 suppressed by pentest-q4 ({OWNER}, {REASON}): their own "
        "alerts are held and counted in their rule's digest."
    )
    assert spray.title.startswith("MFA spray from 203.0.113.7: 3 principals")
    assert spray.summary.endswith(clause)
    assert trailing.title == "MFA spray from 203.0.113.7 ended: 4 principals tried"
    assert trailing.summary.endswith(clause)
    alerts = sorted(n.principal for n in sent if n.kind == KIND_ALERT)
    assert alerts == ["bob", "carol", "dave"]
    assert counted(sent) == 4, "alice's failure is counted once, in the digest"
