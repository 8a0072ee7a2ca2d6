"""Stage settings, read from the Lambda environment that ``.chalice/config.json`` sets per stage."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ConfigError

ENV_TOPIC_ARN = "MFAWATCH_TOPIC_ARN"
ENV_ACCOUNT_NAMES = "MFAWATCH_ACCOUNT_NAMES"


@dataclass(frozen=True)
class Settings:
    """What a stage configures. Defaults suit the offline replay."""

    topic_arn: str = "arn:aws:sns:us-east-1:111122223333:mfawatch-alerts"
    account_names: Mapping[str, str] = field(default_factory=dict)
    """Optional account id -> display name, shown next to the account id in alerts."""

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
    return Settings(
        topic_arn=topic_arn,
        account_names=_json_map(ENV_ACCOUNT_NAMES, names_raw) if names_raw else {},
    )
