"""``python -m mfawatch selftest --stage STAGE [--publish]``: does each deployed function run?

Invokes each deployed function synchronously (``lambda.invoke``, ``RequestResponse``) with the
self-test payload of :mod:`chalicelib.selftest`, which the functions answer before the service
is called: no incident state, no sign-in counted, no rule pattern matches it. Reports per
function whether it initialized, the error type and the round-trip duration. With ``--publish``
the failed-MFA function also sends one LOW "mfawatch self-test" notification to every configured
output and the report lists the SNS message ids.

Function names: ``.chalice/deployed/<stage>.json`` (written by ``chalice deploy``, route (a))
when present, else ``<app>-<stage>-<handler>`` as ``chalice deploy`` names them (route (b) sets
the same names in its merge template).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import MfawatchError
from chalicelib.rules import load_bundle
from chalicelib.selftest import SELFTEST_KEY, selftest_event

from .deploy import load_stage_config
from .deploycommands import app_handler_names
from .paths import CHALICE_CONFIG, CHALICE_DIR

#: The function that publishes with ``--publish``: the one a failed MFA sign-in reaches.
PUBLISHING_RULE = "iam-console-mfa-failure"
DEPLOYED_DIR = CHALICE_DIR / "deployed"


@dataclass(frozen=True)
class FunctionReport:
    """How one function answered the self-test."""

    handler: str
    function: str
    initialized: bool
    error_type: str
    error_message: str
    duration_ms: float
    published: Mapping[str, str]

    @property
    def ok(self) -> bool:
        return self.initialized and not self.error_type

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "initialized": self.initialized,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "duration_ms": round(self.duration_ms, 1),
            "published": dict(self.published),
        }


def deployed_function_names(
    stage: str,
    handlers: Sequence[str],
    config_path: Path = CHALICE_CONFIG,
    deployed_dir: Path = DEPLOYED_DIR,
) -> dict[str, str]:
    """Handler -> the function to invoke: the ARN ``chalice deploy`` recorded, else the name."""
    names = load_stage_config(stage, config_path).names
    functions = {handler: names.function(handler) for handler in handlers}
    record = deployed_dir / f"{stage}.json"
    if record.is_file():
        try:
            deployed = json.loads(record.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise MfawatchError(f"{record}: {exc}") from exc
        for resource in deployed.get("resources", []):
            if resource.get("resource_type") == "lambda_function" and resource["name"] in functions:
                functions[resource["name"]] = resource["lambda_arn"]
    return functions


def invoke_selftest(
    client: Any,
    handler: str,
    function: str,
    publish: bool,
    clock: Callable[[], float] = time.perf_counter,
) -> FunctionReport:
    """Invoke one function with the self-test payload and read its answer."""
    payload = json.dumps(selftest_event(publish=publish)).encode()
    start = clock()
    try:
        response = client.invoke(
            FunctionName=function, InvocationType="RequestResponse", Payload=payload
        )
        body = json.loads(response["Payload"].read() or b"null")
    except ClientError as exc:  # e.g. ResourceNotFoundException: not deployed
        code = exc.response.get("Error", {}).get("Code", "ClientError")
        return FunctionReport(
            handler,
            function,
            False,
            str(code),
            str(exc),
            (clock() - start) * 1000,
            {},
        )
    except (BotoCoreError, json.JSONDecodeError) as exc:
        return FunctionReport(
            handler, function, False, type(exc).__name__, str(exc), (clock() - start) * 1000, {}
        )
    duration_ms = (clock() - start) * 1000
    answered = isinstance(body, dict) and SELFTEST_KEY in body
    if "FunctionError" not in response and answered:
        return FunctionReport(
            handler, function, True, "", "", duration_ms, dict(body.get("published", {}))
        )
    failure: dict[str, Any] = body if isinstance(body, dict) else {}
    error_type = str(failure.get("errorType", response.get("FunctionError", "NoSelfTestAnswer")))
    # A failed publish is the only error an initialized function raises on a self-test; any
    # other error (Runtime.HandlerNotFound, Runtime.ImportModuleError, a ConfigError at init)
    # means the function never got to answer.
    return FunctionReport(
        handler,
        function,
        error_type == "PublishError",
        error_type,
        str(failure.get("errorMessage", body)),
        duration_ms,
        {},
    )


def run_selftest(
    client: Any,
    functions: Mapping[str, str],
    publish: bool,
    clock: Callable[[], float] = time.perf_counter,
) -> list[FunctionReport]:
    """Every function, in handler order; only the failed-MFA function publishes."""
    publisher = load_bundle().get(PUBLISHING_RULE).handler_name
    return [
        invoke_selftest(
            client, handler, functions[handler], publish and handler == publisher, clock
        )
        for handler in sorted(functions)
    ]


def render_report(reports: Sequence[FunctionReport]) -> list[str]:
    """One line per function: name, initialized, error type, duration, message ids."""
    lines = [f"{'function':<52} {'initialized':<11} {'error':<28} {'ms':>8}  published"]
    for report in reports:
        published = ", ".join(f"{o}={m}" for o, m in report.published.items()) or "-"
        lines.append(
            f"{report.function.rsplit(':', 1)[-1]:<52} {'yes' if report.initialized else 'NO':<11} "
            f"{report.error_type or '-':<28} {report.duration_ms:>8.0f}  {published}"
        )
    return lines


@click.command("selftest")
@click.option("--stage", required=True, help="Stage name in .chalice/config.json.")
@click.option("--publish", is_flag=True, help="Also send one LOW notification to every output.")
@click.option("--region", default=None, help="AWS Region of the stage (default: the SDK's).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def selftest(stage: str, publish: bool, region: str | None, as_json: bool) -> None:
    """Invoke every deployed function with the self-test event; exit 1 if one fails."""
    import boto3  # the toolkit's AWS edge: only this command needs it

    try:
        functions = deployed_function_names(stage, app_handler_names())
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc
    reports = run_selftest(boto3.client("lambda", region_name=region), functions, publish)
    if as_json:
        for report in reports:
            click.echo(json.dumps(report.to_json()))
    else:
        for line in render_report(reports):
            click.echo(line)
    failed = [r.function for r in reports if not r.ok]
    click.echo(
        f"{len(reports) - len(failed)}/{len(reports)} functions answered the self-test"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        err=True,
    )
    if failed:
        raise SystemExit(1)


COMMANDS: list[click.Command] = [selftest]
"""What ``mfawatch/cli.py`` adds to its main group."""
