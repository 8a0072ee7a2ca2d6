"""Stage settings, read from the Lambda environment that ``.chalice/config.json`` sets per stage.

| variable | default | meaning |
|---|---|---|
| ``MFAWATCH_TOPIC_ARN`` | (required) | SNS topic every notification goes to |
| ``MFAWATCH_TABLE_NAME`` | (required in Lambda) | DynamoDB table holding the alerting state |
| ``MFAWATCH_ACCOUNT_NAMES`` | ``{}`` | JSON object: account id -> name shown in alerts |
| ``MFAWATCH_BRUTE_FORCE`` | ``10/5m`` | N failed MFA attempts of a principal in M minutes |
| ``MFAWATCH_FATIGUE_SUCCESS`` | ``3/30m`` | a success after K failures within T minutes |
| ``MFAWATCH_TOPIC_RATE`` | ``20/5m`` | at most N alerts+summaries per M minutes to the topic |
| ``MFAWATCH_PRINCIPAL_RATE`` | ``5/5m`` | at most N alerts+summaries per M minutes per principal |

10 failures in 5 minutes is the threshold Splunk's "AWS Multiple Failed MFA Requests For User"
detection uses for MFA fatigue.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ConfigError

ENV_TOPIC_ARN = "MFAWATCH_TOPIC_ARN"
ENV_TABLE_NAME = "MFAWATCH_TABLE_NAME"
ENV_ACCOUNT_NAMES = "MFAWATCH_ACCOUNT_NAMES"
ENV_BRUTE_FORCE = "MFAWATCH_BRUTE_FORCE"
ENV_FATIGUE_SUCCESS = "MFAWATCH_FATIGUE_SUCCESS"
ENV_TOPIC_RATE = "MFAWATCH_TOPIC_RATE"
ENV_PRINCIPAL_RATE = "MFAWATCH_PRINCIPAL_RATE"

_THRESHOLD = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*m?\s*$")


@dataclass(frozen=True)
class Threshold:
    """``count`` things within ``minutes``."""

    count: int
    minutes: float

    @property
    def seconds(self) -> float:
        return self.minutes * 60.0

    def __str__(self) -> str:
        return f"{self.count}/{self.minutes:g}m"


def parse_threshold(name: str, text: str) -> Threshold:
    """Parse ``"10/5m"`` (N per M minutes); the error names the variable."""
    match = _THRESHOLD.match(text)
    if not match or int(match.group(1)) < 1 or float(match.group(2)) <= 0:
        raise ConfigError(
            f"{name} must look like '10/5m' (N per M minutes, both > 0); got {text!r}"
        )
    return Threshold(int(match.group(1)), float(match.group(2)))


@dataclass(frozen=True)
class Settings:
    """What a stage configures. Defaults suit the offline replay."""

    topic_arn: str = "arn:aws:sns:us-east-1:111122223333:mfawatch-alerts"
    table_name: str = ""
    account_names: Mapping[str, str] = field(default_factory=dict)
    """Optional account id -> display name, shown next to the account id in alerts."""
    brute_force: Threshold = Threshold(10, 5)
    fatigue_success: Threshold = Threshold(3, 30)
    topic_rate: Threshold = Threshold(20, 5)
    principal_rate: Threshold = Threshold(5, 5)
    claim_ttl_seconds: float = 48 * 3600.0
    """How long an eventID is remembered. EventBridge retries deliveries for up to 24 hours and
    Lambda keeps asynchronous events for up to 6 hours; 48 hours covers both."""
    lease_seconds: float = 90.0
    """How long a claim protects an event being processed; longer than the Lambda timeout."""
    workflow_ttl_seconds: float = 3600.0
    """How long an Identity Center AuthWorkflowID -> user mapping is kept."""

    def account_name(self, account: str) -> str:
        return self.account_names.get(account, "")


def _json_map(name: str, raw: str) -> dict[str, str]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(
            f'{name} must be a JSON object of strings, e.g. {{"111122223333": "prod"}}'
        )
    return value


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the stage settings from the environment.

    Raises :class:`ConfigError` naming the variable that is missing or wrong.
    """
    env = os.environ if environ is None else environ
    topic_arn = env.get(ENV_TOPIC_ARN, "").strip()
    if not topic_arn.startswith("arn:"):
        raise ConfigError(
            f"{ENV_TOPIC_ARN} must be an SNS topic ARN (set it per stage in .chalice/config.json "
            f"environment_variables); got {topic_arn!r}"
        )
    names_raw = env.get(ENV_ACCOUNT_NAMES, "").strip()
    defaults = Settings()

    def threshold(name: str, default: Threshold) -> Threshold:
        raw = env.get(name, "").strip()
        return parse_threshold(name, raw) if raw else default

    return Settings(
        topic_arn=topic_arn,
        table_name=env.get(ENV_TABLE_NAME, "").strip(),
        account_names=_json_map(ENV_ACCOUNT_NAMES, names_raw) if names_raw else {},
        brute_force=threshold(ENV_BRUTE_FORCE, defaults.brute_force),
        fatigue_success=threshold(ENV_FATIGUE_SUCCESS, defaults.fatigue_success),
        topic_rate=threshold(ENV_TOPIC_RATE, defaults.topic_rate),
        principal_rate=threshold(ENV_PRINCIPAL_RATE, defaults.principal_rate),
    )
