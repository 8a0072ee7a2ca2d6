"""Stage settings from the Lambda environment (chalicelib.core.config): a bad value is refused
naming its field."""

from __future__ import annotations

import re

import pytest

from chalicelib.core.config import parse_outputs, settings_from_env
from chalicelib.core.errors import ConfigError


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[]", "non-empty JSON object"),
        ('{"Alerts": {"topic_arn": "arn:aws:sns:us-east-1:1:t"}}', "lower-case"),
        ('{"a": {"topic_arn": "nope"}}', "MFAWATCH_OUTPUTS.a.topic_arn must be an SNS topic ARN"),
        (
            '{"a": {"topic_arn": "arn:aws:sns:us-east-1:1:t", "min_severity": "URGENT"}}',
            "MFAWATCH_OUTPUTS.a.min_severity",
        ),
        (
            '{"a": {"topic_arn": "arn:aws:sns:us-east-1:1:t", "kinds": ["alarm"]}}',
            "MFAWATCH_OUTPUTS.a.kinds",
        ),
        (
            '{"a": {"topic_arn": "arn:aws:sns:us-east-1:1:t", "format": "slack"}}',
            "MFAWATCH_OUTPUTS.a.format",
        ),
        ('{"a": {"topic_arn": "arn:aws:sns:us-east-1:1:t", "color": "red"}}', "unknown field"),
    ],
)
def test_bad_outputs_config_names_the_field(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_outputs(raw)


def test_bad_allowed_accounts_is_rejected() -> None:
    with pytest.raises(ConfigError, match="MFAWATCH_ALLOWED_ACCOUNTS: not 12-digit"):
        settings_from_env(
            {
                "MFAWATCH_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
                "MFAWATCH_ALLOWED_ACCOUNTS": "123, 111122223333",
            }
        )
