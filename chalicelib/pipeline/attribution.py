"""Identity Center attribution: name the user of a step from earlier steps of the same workflow.

An Identity Center sign-in is several events; only some name the user (by user name, or by the
identity-store user id). One request per step merges the names and ids it carries into the
workflow's item and returns what is known. A failure that names nobody, before any step of its
workflow did, waits for the step that names the user (or the scheduler) instead.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from ..core.documents import EVENT, ID_WAITING, WAITING, Workflow, failure_entry
from ..core.notifications import Notification
from ..core.records import PRINCIPAL_IDENTITY_CENTER, UNKNOWN_PRINCIPAL_KEY, SignInRecord
from ..core.rules import Rule
from ..core.state import EXPIRES_AT, ConditionFailed, Item, KeyKind, Missing, make_key
from .claim import claim_key, event_attribute
from .parts import Parts, retry_horizon

logger = logging.getLogger(__name__)


def unnamed(record: SignInRecord) -> bool:
    """An Identity Center failure whose user no step of its workflow has named yet."""
    return bool(record.auth_workflow_id) and record.principal_key == UNKNOWN_PRINCIPAL_KEY


class Attribution:
    """Names Identity Center steps from their workflow; keeps failures waiting for a name."""

    def __init__(self, parts: Parts) -> None:
        self.store, self.settings, self.metrics = parts.store, parts.settings, parts.metrics

    def attribute(
        self, record: SignInRecord, now: float, waiting_rule: str = ""
    ) -> tuple[SignInRecord, list[str], list[str]]:
        """Name the user of an Identity Center step from earlier steps of the same workflow
        (one request: the names and ids a step carries are merged, what is known comes back).

        A failure of ``waiting_rule`` that names nobody and finds no name yet is listed on the
        workflow (in the same request, only while the workflow has no name): the step that names
        the user later decides it again. One that finds the name but not the identity-store
        user id is listed for the id (one more request, only in that order): the step that
        carries the id lists it under the id (the principal step). Returns the record, for a
        step that names the user the claims of the failures that waited for it, and for a step
        that carries the id the failures (entries) that waited for that.
        """
        if not record.auth_workflow_id:
            return record, [], []
        key = make_key(KeyKind.WORKFLOW, record.auth_workflow_id)
        named = (
            record.principal
            if record.principal_type == PRINCIPAL_IDENTITY_CENTER
            and record.principal_key not in (UNKNOWN_PRINCIPAL_KEY, record.identity_store_user_id)
            else ""
        )
        values: Item = {}
        if named:
            values["user_name"] = named
        if record.identity_store_user_id:
            values["user_id"] = record.identity_store_user_id
        waiting: list[str] = []
        for_id: list[str] = []
        if waiting_rule and not named and record.principal_key == UNKNOWN_PRINCIPAL_KEY:
            known = self._list_waiting(key, record, now, values, waiting_rule)
        elif values:
            known, waiting, for_id = self._merge(key, record, now, values, named)
        else:
            known = Workflow.from_item(self.store.get(key, now))
        return self._named(record, known, named), waiting, for_id

    def _ttl(self, now: float) -> Item:
        return {EXPIRES_AT: now + self.settings.workflow_ttl_seconds}

    def _list_waiting(
        self, key: str, record: SignInRecord, now: float, values: Item, waiting_rule: str
    ) -> Workflow:
        """A failure that names nobody: listed on the workflow while it has no name."""
        try:
            item = self.store.update(
                key,
                now,
                set_values={**values, **self._ttl(now)},
                append={WAITING: [claim_key(waiting_rule, record.event_id)]},
                condition=Missing("user_name"),
            )
        except ConditionFailed as failed:
            item = failed.current or {}
        known = Workflow.from_item(item)
        if known.user_name and not known.user_id and not record.identity_store_user_id:
            known = self._wait_for_user_id(key, record, now, known)
        return known

    def _merge(
        self, key: str, record: SignInRecord, now: float, values: Item, named: str
    ) -> tuple[Workflow, list[str], list[str]]:
        """A step that carries a name or an id: merged, and what waited for it taken off."""
        item = self.store.update(key, now, set_values={**values, **self._ttl(now)})
        waiting: list[str] = []
        for_id: list[str] = []
        if named and item.get(WAITING):
            waiting = [str(k) for k in item[WAITING]]
            # Nothing is listed once the workflow has a name (the condition of _list_waiting).
            self.store.update(key, now, remove=[WAITING])
        if record.identity_store_user_id and item.get(ID_WAITING):
            for_id = [str(e) for e in item[ID_WAITING]]
            # Nothing is listed once the workflow has the id (:meth:`_wait_for_user_id`).
            self.store.update(key, now, remove=[ID_WAITING])
        return Workflow.from_item(item), waiting, for_id

    @staticmethod
    def _named(record: SignInRecord, known: Workflow, named: str) -> SignInRecord:
        # The identity-store user id a step of the workflow carried: device changes name the
        # user by it (the failure's takeover chain, the principal step's count_for_user_id).
        user_id = record.identity_store_user_id or known.user_id
        if named or not known.user_name:
            return replace(record, identity_store_user_id=user_id) if named else record
        return replace(
            record,
            principal=known.user_name,
            principal_key=known.user_name,
            principal_type=PRINCIPAL_IDENTITY_CENTER,
            identity_store_user_id=user_id,
        )

    def _wait_for_user_id(
        self, key: str, record: SignInRecord, now: float, known: Workflow
    ) -> Workflow:
        """List a named failure on its workflow until a step carries the user id (only while
        the workflow has none: a failed condition returns the id that came meanwhile)."""
        entry = failure_entry(record.event_time.timestamp(), record.event_id, record.source_ip)
        try:
            self.store.update(key, now, append={ID_WAITING: [entry]}, condition=Missing("user_id"))
        except ConditionFailed as failed:
            return Workflow.from_item(failed.current) if failed.current else known
        return known

    def name_wait(self) -> float:
        """How long a failure waits for the step that names its user: a naming step whose first
        attempt failed is processed within the retry horizon."""
        return retry_horizon(self.settings)

    def wait_for_name(
        self, rule: Rule, record: SignInRecord, key: str, now: float
    ) -> list[Notification]:
        """Keep the failure undecided, with its event, until the naming step decides it again
        or the scheduler does when the wait is over (the claim is due then)."""
        self.metrics.count("WaitingForName", Rule=rule.id)
        logger.info(
            "waiting for the step that names the user of %s",
            record.event_id,
            extra={"rule": rule.id, "event_id": record.event_id},
        )
        self.store.update(
            key,
            now,
            set_values={EVENT: event_attribute(record), WAITING: True, "lease_until": now},
        )
        return []
