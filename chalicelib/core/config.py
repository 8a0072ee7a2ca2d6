"""Stage settings, read from the Lambda environment that ``.chalice/config.json`` sets per stage.

| variable | default | meaning |
|---|---|---|
| ``MFAWATCH_TOPIC_ARN`` | (required) | the alerts topic; the only output unless OUTPUTS is set |
| ``MFAWATCH_TABLE_NAME`` | (required in Lambda) | DynamoDB table holding the alerting state |
| ``MFAWATCH_ACCOUNT_NAMES`` | ``{}`` | JSON object: account id -> name shown in alerts |
| ``MFAWATCH_BRUTE_FORCE`` | ``10/5m`` | N failed MFA attempts of a principal in M minutes |
| ``MFAWATCH_FATIGUE_SUCCESS`` | ``3/30m`` | a success after K failures within T minutes |
| ``MFAWATCH_TOPIC_RATE`` | ``20/5m`` | at most N rate-limited notifications per M minutes |
| ``MFAWATCH_PRINCIPAL_RATE`` | ``5/5m`` | the same, per principal |
| ``MFAWATCH_OUTPUTS`` | ``alerts`` only | JSON: named outputs (topic, severity, kinds, format) |
| ``MFAWATCH_ALLOWED_ACCOUNTS`` | (any) | comma-separated account ids expected to send events |
| ``MFAWATCH_SETTLE_SECONDS`` | ``90`` | seconds writes take to settle before summaries merge them |
| ``MFAWATCH_LAMBDA_TIMEOUT`` | ``30`` | the functions' timeout (equal to ``lambda_timeout``) |
| ``MFAWATCH_CONCURRENCY`` | ``5`` | the functions' ``reserved_concurrency`` (the scheduler: 1) |
| ``MFAWATCH_CANARY_TOPIC_ARN`` | (the heartbeat's) | the stage's canary topic, no subscribers |

The timing settings are checked together when the settings are built (at init in Lambda): an
invocation must end before its claim's lease (90 s) runs out, or a retry would take the claim
over and deliver while it still runs; writes still in flight land within the timeout, so the
settle delay covers it (0 only where nothing is in flight: tests that drive the handlers by the
wall clock). The reserved concurrency bounds how many execution environments a function runs at
once, and with it the marked copies a DynamoDB outage can publish (``docs/outputs.md``); the
parked-event consumer's SQS event source takes the same number as its maximum concurrency, which
SQS allows from 2. A :class:`errors.ConfigError` names the settings that do not fit.

Rate-limited are alerts, summaries and escalations other than CRITICAL (an MFA fatigue success
always goes out); what a limit holds back goes into the storm digest, which is not limited, nor
are heartbeat notifications. Each notification goes to every output whose ``min_severity`` and
``kinds`` admit it.

``MFAWATCH_OUTPUTS`` example (every notification to ``alerts``; HIGH and CRITICAL also to
``pager``; a chat channel through Amazon Q Developer in chat applications)::

    {"alerts": {"topic_arn": "arn:aws:sns:us-east-1:111122223333:mfawatch-prod-alerts"},
     "pager":  {"topic_arn": "arn:aws:sns:us-east-1:111122223333:mfawatch-prod-pager",
                "min_severity": "HIGH", "kinds": ["alert", "escalation", "storm"]},
     "chat":   {"topic_arn": "arn:aws:sns:us-east-1:111122223333:mfawatch-prod-chat",
                "format": "chat"}}

10 failures in 5 minutes is the threshold Splunk's "AWS Multiple Failed MFA Requests For User"
detection uses for MFA fatigue.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .notifications import KINDS
from .rules import SEVERITIES

ENV_TOPIC_ARN = "MFAWATCH_TOPIC_ARN"
ENV_TABLE_NAME = "MFAWATCH_TABLE_NAME"
ENV_ACCOUNT_NAMES = "MFAWATCH_ACCOUNT_NAMES"
ENV_BRUTE_FORCE = "MFAWATCH_BRUTE_FORCE"
ENV_FATIGUE_SUCCESS = "MFAWATCH_FATIGUE_SUCCESS"
ENV_MFA_SPRAY = "MFAWATCH_MFA_SPRAY"
ENV_ROOT_SPRAY = "MFAWATCH_ROOT_SPRAY"
ENV_PASSWORD_SPRAY = "MFAWATCH_PASSWORD_SPRAY"  # noqa: S105 - a variable name
ENV_TAKEOVER = "MFAWATCH_TAKEOVER"
#: What turns an optional detector off.
OFF = "off"
ENV_TOPIC_RATE = "MFAWATCH_TOPIC_RATE"
ENV_PRINCIPAL_RATE = "MFAWATCH_PRINCIPAL_RATE"
ENV_OUTPUTS = "MFAWATCH_OUTPUTS"
ENV_ALLOWED_ACCOUNTS = "MFAWATCH_ALLOWED_ACCOUNTS"
ENV_SETTLE_SECONDS = "MFAWATCH_SETTLE_SECONDS"
ENV_LAMBDA_TIMEOUT = "MFAWATCH_LAMBDA_TIMEOUT"
ENV_CONCURRENCY = "MFAWATCH_CONCURRENCY"
ENV_CANARY_TOPIC_ARN = "MFAWATCH_CANARY_TOPIC_ARN"
#: Lambda's longest timeout (https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html).
MAX_LAMBDA_TIMEOUT = 900.0
#: The range of an SQS event source's maximum concurrency, which the consumer of parked events
#: takes from the stage's reserved concurrency (AWS Lambda API Reference, ScalingConfig:
#: https://docs.aws.amazon.com/lambda/latest/dg/API_ScalingConfig.html).
MIN_CONCURRENCY = 2
MAX_CONCURRENCY = 1000

FORMATS = ("standard", "chat")
DEFAULT_OUTPUT = "alerts"

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
class Output:
    """A named destination: an SNS topic and which notifications it gets, in which format.

    ``standard`` publishes with ``MessageStructure=json``: readable text for e-mail, a short SMS
    and the JSON alert document for sqs/lambda/https/firehose. ``chat`` publishes the custom
    notification format of Amazon Q Developer in chat applications, which silently drops
    anything else.
    """

    name: str
    topic_arn: str
    min_severity: str = "LOW"
    kinds: tuple[str, ...] = KINDS
    format: str = "standard"

    def wants(self, severity: str, kind: str) -> bool:
        """Whether a notification of this severity and kind goes to this output."""
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else 0
        return rank >= SEVERITIES.index(self.min_severity) and kind in self.kinds


@dataclass(frozen=True)
class Settings:
    """What a stage configures. Defaults suit the offline replay."""

    topic_arn: str = "arn:aws:sns:us-east-1:111122223333:mfawatch-alerts"
    table_name: str = ""
    account_names: Mapping[str, str] = field(default_factory=dict)
    """Optional account id -> display name, shown next to the account id in alerts."""
    brute_force: Threshold = Threshold(10, 5)
    fatigue_success: Threshold = Threshold(3, 30)
    mfa_spray: Threshold = Threshold(3, 15)
    """One source IP failing the MFA step for N distinct principals within M minutes (HIGH)."""
    root_spray: Threshold = Threshold(2, 60)
    """One source IP failing root sign-in in N accounts within M minutes (CRITICAL)."""
    password_spray: Threshold | None = Threshold(10, 10)
    """One source IP with wrong passwords for N distinct principals within M minutes (MEDIUM);
    None: off."""
    takeover: Threshold = Threshold(1, 60)
    """An MFA device or password change within M minutes after N failed MFA steps (CRITICAL)."""
    topic_rate: Threshold = Threshold(20, 5)
    principal_rate: Threshold = Threshold(5, 5)
    claim_ttl_seconds: float = 48 * 3600.0
    """How long an eventID is remembered. EventBridge retries deliveries for up to 24 hours and
    Lambda keeps asynchronous events for up to 6 hours; 48 hours covers both."""
    lease_seconds: float = 90.0
    """How long a claim protects an event being processed; longer than the Lambda timeout."""
    settle_seconds: float = 90.0
    """How long a written item may take to be seen by the scheduler's merges (a Lambda write in
    flight lands within the function timeout; index propagation is usually under a second).
    Summaries and digests merge what was written up to ``now - settle``: keep it above the
    Lambda timeout."""
    workflow_ttl_seconds: float = 3600.0
    """How long an Identity Center AuthWorkflowID -> user mapping is kept."""
    outputs: tuple[Output, ...] = ()
    """Named outputs; empty means one ``alerts`` output on ``topic_arn``."""
    allowed_accounts: frozenset[str] = frozenset()
    """Accounts expected to send events; others are flagged in the alert (empty: no check)."""
    lambda_timeout_seconds: float = 30.0
    """The functions' timeout (``lambda_timeout`` in ``.chalice/config.json``): how long an
    invocation, and a write it has in flight, can last."""
    concurrency: int = 5
    """Each function's reserved concurrency (``reserved_concurrency`` in ``.chalice/config.json``;
    the scheduler keeps 1): at most this many execution environments of a function run at once,
    which bounds the marked copies a DynamoDB outage publishes (each environment sends at most
    one a minute). Throttled events are not lost: Lambda retries them (docs/outputs.md)."""
    canary_topic_arn: str = ""
    """The stage's canary topic (``mfawatch-<stage>-canary``, encrypted with the stage key, no
    subscribers): the scheduled heartbeat publishes to it to prove SNS works."""

    def __post_init__(self) -> None:
        timeout, lease, settle = (
            self.lambda_timeout_seconds,
            self.lease_seconds,
            self.settle_seconds,
        )
        if not 0 < timeout <= MAX_LAMBDA_TIMEOUT:
            raise ConfigError(
                f"{ENV_LAMBDA_TIMEOUT} must be a Lambda timeout, 1 to 900 seconds; got {timeout:g}"
            )
        if timeout >= lease:
            raise ConfigError(
                f"{ENV_LAMBDA_TIMEOUT} ({timeout:g} s) must be shorter than the claim lease "
                f"({lease:g} s): an invocation still running when its lease ends is taken over by "
                "a retry, and both deliver. Lower lambda_timeout in .chalice/config.json (and "
                f"{ENV_LAMBDA_TIMEOUT} with it)."
            )
        if 0 < settle < timeout:
            raise ConfigError(
                f"{ENV_SETTLE_SECONDS} ({settle:g} s) must be at least {ENV_LAMBDA_TIMEOUT} "
                f"({timeout:g} s): a write still in flight when a summary or digest is cut would "
                "miss it. Raise the settle delay or lower the timeout."
            )
        if not MIN_CONCURRENCY <= self.concurrency <= MAX_CONCURRENCY:
            raise ConfigError(
                f"{ENV_CONCURRENCY} ({self.concurrency}) must be a reserved concurrency from "
                f"{MIN_CONCURRENCY} to {MAX_CONCURRENCY}: the parked-event consumer's SQS event "
                "source takes it as its maximum concurrency, which SQS allows from 2. Set "
                f"reserved_concurrency in .chalice/config.json (and {ENV_CONCURRENCY} with it)."
            )
        for name, spray in (
            (ENV_MFA_SPRAY, self.mfa_spray),
            (ENV_ROOT_SPRAY, self.root_spray),
            (ENV_PASSWORD_SPRAY, self.password_spray),
        ):
            if spray is not None and spray.count < 2:
                raise ConfigError(
                    f"{name} ({spray}) must count at least 2 distinct principals or accounts: "
                    "one is a single user's failure, which the rules already alert on"
                )

    def account_name(self, account: str) -> str:
        return self.account_names.get(account, "")

    @property
    def routes(self) -> tuple[Output, ...]:
        return self.outputs or (Output(DEFAULT_OUTPUT, self.topic_arn),)

    def output(self, name: str) -> Output:
        for output in self.routes:
            if output.name == name:
                return output
        raise ConfigError(f"{ENV_OUTPUTS}: no output named {name!r}")

    def destinations(self, severity: str, kind: str) -> list[str]:
        """The outputs a notification goes to, in configuration order."""
        return [o.name for o in self.routes if o.wants(severity, kind)]

    def account_note(self, account: str) -> str:
        """A warning for alerts about accounts outside the allow-list (never dropped)."""
        if self.allowed_accounts and account not in self.allowed_accounts:
            return (
                f"account {account} is not in {ENV_ALLOWED_ACCOUNTS}: an account outside the "
                "Organization (or a new one) is sending sign-in events to this bus"
            )
        return ""


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


def parse_outputs(raw: str) -> tuple[Output, ...]:
    """Parse ``MFAWATCH_OUTPUTS``; errors name the output and the field."""
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{ENV_OUTPUTS} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or not document:
        raise ConfigError(f"{ENV_OUTPUTS} must be a non-empty JSON object of named outputs")
    return tuple(_output(name, spec) for name, spec in document.items())


def _output(name: str, spec: Any) -> Output:
    """One output of ``MFAWATCH_OUTPUTS``; errors name it and the field."""
    where = f"{ENV_OUTPUTS}.{name}"
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
        raise ConfigError(f"{where}: output names are lower-case words (a-z, 0-9, _ and -)")
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be an object with at least topic_arn")
    unknown = set(spec) - {"topic_arn", "min_severity", "kinds", "format"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    topic = spec.get("topic_arn", "")
    if not isinstance(topic, str) or not topic.startswith("arn:") or topic.count(":") < 5:
        raise ConfigError(f"{where}.topic_arn must be an SNS topic ARN; got {topic!r}")
    severity = spec.get("min_severity", "LOW")
    if severity not in SEVERITIES:
        raise ConfigError(f"{where}.min_severity must be one of {', '.join(SEVERITIES)}")
    kinds = spec.get("kinds", list(KINDS))
    if not isinstance(kinds, list) or not kinds or set(kinds) - set(KINDS):
        raise ConfigError(f"{where}.kinds must be a non-empty list of {', '.join(KINDS)}")
    fmt = spec.get("format", "standard")
    if fmt not in FORMATS:
        raise ConfigError(f"{where}.format must be one of {', '.join(FORMATS)}")
    return Output(name, topic, severity, tuple(kinds), fmt)


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
        mfa_spray=threshold(ENV_MFA_SPRAY, defaults.mfa_spray),
        root_spray=threshold(ENV_ROOT_SPRAY, defaults.root_spray),
        password_spray=None
        if env.get(ENV_PASSWORD_SPRAY, "").strip().lower() == OFF
        else threshold(ENV_PASSWORD_SPRAY, defaults.password_spray or Threshold(10, 10)),
        takeover=threshold(ENV_TAKEOVER, defaults.takeover),
        topic_rate=threshold(ENV_TOPIC_RATE, defaults.topic_rate),
        principal_rate=threshold(ENV_PRINCIPAL_RATE, defaults.principal_rate),
        outputs=parse_outputs(env[ENV_OUTPUTS]) if env.get(ENV_OUTPUTS, "").strip() else (),
        allowed_accounts=_accounts(env.get(ENV_ALLOWED_ACCOUNTS, "")),
        settle_seconds=_seconds(ENV_SETTLE_SECONDS, env.get(ENV_SETTLE_SECONDS, ""), 90.0),
        lambda_timeout_seconds=_seconds(
            ENV_LAMBDA_TIMEOUT, env.get(ENV_LAMBDA_TIMEOUT, ""), defaults.lambda_timeout_seconds
        ),
        concurrency=_whole(ENV_CONCURRENCY, env.get(ENV_CONCURRENCY, ""), defaults.concurrency),
        canary_topic_arn=_topic_arn(ENV_CANARY_TOPIC_ARN, env.get(ENV_CANARY_TOPIC_ARN, "")),
    )


def _whole(name: str, raw: str, default: int) -> int:
    if not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number; got {raw!r}") from None


def _topic_arn(name: str, raw: str) -> str:
    """An optional SNS topic ARN (empty when unset)."""
    value = raw.strip()
    if value and (not value.startswith("arn:") or value.count(":") < 5):
        raise ConfigError(f"{name} must be an SNS topic ARN; got {raw!r}")
    return value


def _seconds(name: str, raw: str, default: float) -> float:
    if not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise ConfigError(f"{name} must be a number of seconds from 0 to 3600; got {raw!r}")
    return value


def _accounts(raw: str) -> frozenset[str]:
    accounts = frozenset(a.strip() for a in raw.replace(";", ",").split(",") if a.strip())
    bad = sorted(a for a in accounts if not re.fullmatch(r"\d{12}", a))
    if bad:
        raise ConfigError(f"{ENV_ALLOWED_ACCOUNTS}: not 12-digit account ids: {', '.join(bad)}")
    return accounts
