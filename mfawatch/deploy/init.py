"""``mfawatch init --stage S``: write or update a stage of ``.chalice/config.json``.

From flags, or prompts for what is missing: the account the stage deploys to and its Region, the
accounts expected to send sign-in events and their names, the outputs (alerts, and the pager
with its minimum severity) and optional e-mail subscriptions. The result is checked the way the
functions and ``mfawatch deploy`` will read it (:func:`chalicelib.core.config.settings_from_env`,
the stage-name limit, the policy generator), and the change is shown as a diff before it is written.

A new stage starts as a copy of an existing one (``--like``, default ``dev``), so settings that
are not asked for (thresholds, memory, the reserved concurrency) come from the file
itself rather than from a second copy of them here.

:func:`stage_init` is pure; the command (:mod:`mfawatch.cli.init`) reads and writes the file and
asks the questions.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.core.config import (
    ENV_ACCOUNT_NAMES,
    ENV_ALLOWED_ACCOUNTS,
    ENV_CANARY_TOPIC_ARN,
    ENV_OUTPUTS,
    ENV_TABLE_NAME,
    ENV_TOPIC_ARN,
    parse_outputs,
    settings_from_env,
)
from chalicelib.core.errors import ConfigError
from chalicelib.core.rules import SEVERITIES
from mfawatch.deploy.policy import stage_policy
from mfawatch.deploy.templates import (
    DEFAULT_ROUTES,
    OUTPUT_ALERTS_TOPIC,
    OUTPUT_PAGER_TOPIC,
    SUBSCRIPTIONS_KEY,
    StageConfig,
    StageNames,
)

# The example accounts of AWS's documentation, which the shipped config uses as placeholders.
PLACEHOLDER_ACCOUNTS = frozenset({"111122223333", "444455556666", "123456789012"})
REGION_PATTERN = r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d"
EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"


@dataclass(frozen=True)
class InitAnswers:
    """What ``init`` asks for; every field validated by :func:`stage_init`."""

    stage: str
    region: str
    deploy_account: str
    accounts: Mapping[str, str]
    """Account id -> name (may be empty) of every account expected to send events."""
    pager_min_severity: str | None = "HIGH"
    """None: no pager output."""
    alert_emails: Sequence[str] = ()
    pager_emails: Sequence[str] = ()
    like: str = "dev"


@dataclass(frozen=True)
class InitResult:
    config: dict[str, Any]
    warnings: tuple[str, ...]


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def parse_account(text: str) -> tuple[str, str]:
    """``ID`` or ``ID=NAME`` -> (id, name); :class:`ConfigError` naming the value."""
    account, _, name = text.partition("=")
    account = account.strip()
    if not re.fullmatch(r"\d{12}", account):
        raise ConfigError(f"--account {text!r}: an account is 12 digits, optionally =NAME")
    return account, name.strip()


def stage_init(config: Mapping[str, Any], answers: InitAnswers) -> InitResult:
    """Pure: ``config`` with stage ``answers.stage`` written from the answers, checked.

    An existing stage keeps every setting that is not asked for (thresholds, other outputs);
    a new stage starts as a copy of ``answers.like`` when it exists.
    """
    app_name = config.get("app_name")
    if not isinstance(app_name, str) or not app_name:
        raise ConfigError("app_name is not set: is this a Chalice project's .chalice/config.json?")
    _check_answers(answers)
    stage = answers.stage
    updated: dict[str, Any] = copy.deepcopy(dict(config))
    stages = updated.setdefault("stages", {})
    if isinstance(stages.get(stage), dict):
        entry = stages[stage]
    else:
        template = stages.get(answers.like)
        entry = copy.deepcopy(template) if isinstance(template, dict) else {}
        stages[stage] = entry
    entry["iam_policy_file"] = f"policy-{stage}.json"
    env = entry.setdefault("environment_variables", {})
    names = StageNames(app_name, stage)
    arn = f"arn:{partition_of(answers.region)}:sns:{answers.region}:{answers.deploy_account}:"
    topics = {
        OUTPUT_ALERTS_TOPIC: arn + names.alerts_topic,
        OUTPUT_PAGER_TOPIC: arn + names.pager_topic,
    }
    env[ENV_TOPIC_ARN] = topics[OUTPUT_ALERTS_TOPIC]
    env[ENV_TABLE_NAME] = names.table
    env[ENV_CANARY_TOPIC_ARN] = arn + names.canary_topic
    env[ENV_ALLOWED_ACCOUNTS] = ",".join(answers.accounts)
    env[ENV_ACCOUNT_NAMES] = json.dumps({a: n for a, n in answers.accounts.items() if n})
    env[ENV_OUTPUTS] = _outputs(str(env.get(ENV_OUTPUTS) or ""), topics, answers.pager_min_severity)
    subscriptions = {"alerts": list(answers.alert_emails), "pager": list(answers.pager_emails)}
    subscriptions = {k: v for k, v in subscriptions.items() if v}
    if subscriptions:
        entry[SUBSCRIPTIONS_KEY] = subscriptions
    else:
        entry.pop(SUBSCRIPTIONS_KEY, None)

    # What deploy and the functions will check, checked now.
    stage_config = StageConfig.from_config(updated, stage)
    settings_from_env(stage_config.environment())
    stage_config.subscriptions()
    stage_policy(stage_config)
    return InitResult(updated, _warnings(answers))


def _check_answers(answers: InitAnswers) -> None:
    """:class:`ConfigError` naming the first answer that is not valid."""
    if not re.fullmatch(REGION_PATTERN, answers.region):
        raise ConfigError(f"--region {answers.region!r} is not an AWS Region (e.g. us-east-1)")
    if not re.fullmatch(r"\d{12}", answers.deploy_account):
        raise ConfigError(f"--deploy-account {answers.deploy_account!r}: 12 digits expected")
    if not answers.accounts:
        raise ConfigError("give at least one --account (the accounts whose sign-ins to watch)")
    severity = answers.pager_min_severity
    if severity is not None and severity not in SEVERITIES:
        raise ConfigError(f"--pager-min-severity must be one of {', '.join(SEVERITIES)}")
    for email in (*answers.alert_emails, *answers.pager_emails):
        if not re.fullmatch(EMAIL_PATTERN, email):
            raise ConfigError(f"e-mail {email!r} is not an e-mail address")
    if answers.pager_emails and severity is None:
        raise ConfigError("--pager-email needs the pager output (drop --no-pager)")


def _outputs(raw: str, topics: Mapping[str, str], pager_min_severity: str | None) -> str:
    """``MFAWATCH_OUTPUTS``: alerts and pager on this stage's topics; other outputs (a chat
    topic) are kept."""
    raw = raw.strip()
    if raw:
        parse_outputs(raw)  # names the output and field that is wrong
    outputs = json.loads(raw or "{}")
    for name, (output_key, route) in DEFAULT_ROUTES.items():
        spec = dict(route, **{k: v for k, v in (outputs.get(name) or {}).items()})
        spec["topic_arn"] = topics[output_key]
        outputs[name] = {"topic_arn": spec.pop("topic_arn"), **spec}
    if pager_min_severity is None:
        outputs.pop("pager", None)
    else:
        outputs["pager"]["min_severity"] = pager_min_severity
    return json.dumps(outputs)


def _warnings(answers: InitAnswers) -> tuple[str, ...]:
    warnings = []
    placeholders = sorted({answers.deploy_account, *answers.accounts} & PLACEHOLDER_ACCOUNTS)
    if placeholders:
        warnings.append(
            f"account(s) {', '.join(placeholders)} are AWS's documentation examples: "
            "use your own account ids"
        )
    if answers.deploy_account not in answers.accounts:
        warnings.append(
            f"the deploy account {answers.deploy_account} is not among --account: its own "
            "sign-ins will carry a note that it is outside the list"
        )
    return tuple(warnings)


def config_diff(old: str, new: str, path: Path) -> list[str]:
    """The unified diff ``init`` shows before it writes (empty: nothing to write)."""
    return list(
        difflib.unified_diff(
            old.splitlines(), new.splitlines(), f"{path} (before)", f"{path} (after)", lineterm=""
        )
    )
