"""The self-test of a deployed stage (``mfawatch selftest``): does each deployed function run?

Invokes each deployed function synchronously (``lambda.invoke``, ``RequestResponse``) with the
self-test payload of :mod:`chalicelib.core.selftest`, which the functions answer before the service
is called: no incident state, no sign-in counted, no rule pattern matches it. Reports per
function one of: ok; did not start (the init error); raised (error type, message, request id);
answered something else (its first 200 bytes); no such function; could not invoke.
With ``--publish``
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

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core.errors import MfawatchError
from chalicelib.core.rules import load_bundle
from chalicelib.core.selftest import SELFTEST_KEY, selftest_event
from mfawatch.deploy.templates import load_stage_config
from mfawatch.paths import CHALICE_CONFIG, CHALICE_DIR

#: The function that publishes with ``--publish``: the one a failed MFA sign-in reaches.
PUBLISHING_RULE = "iam-console-mfa-failure"
DEPLOYED_DIR = CHALICE_DIR / "deployed"


# What a function's answer to the self-test means (docs/deploy.md, "Troubleshooting": one row
# each, with the same hint).
ANSWERED = "ok"
NOT_STARTED = "did not start"
RAISED = "raised"
OTHER_ANSWER = "answered something else"
NOT_FOUND = "no such function"
NOT_INVOKED = "could not invoke"

HINTS: dict[str, str] = {
    NOT_STARTED: "the init phase failed before the handler ran: a Runtime.* type means the "
    "package or handler is wrong (redeploy this version); another type is raised by app.py at "
    "import, e.g. ConfigError naming an MFAWATCH_* setting (fix it: mfawatch init, then deploy)",
    RAISED: "the function started and its handler raised: search its log group "
    "/aws/lambda/<function> for the request id; PublishError means sns:Publish or the KMS key "
    "(regenerate the policy and deploy)",
    OTHER_ANSWER: "the function ran but did not answer the self-test: another or an older "
    "function has this name; deploy this version (mfawatch deploy)",
    NOT_FOUND: "not deployed under this name in this account and Region: mfawatch deploy "
    "--stage S, or pass the Region it is in (--region)",
    NOT_INVOKED: "the caller cannot invoke it: lambda:InvokeFunction on "
    "mfawatch-<stage>-* is needed (docs/deploy.md, Before you deploy), or retry if throttled",
}
ANSWER_PREVIEW_BYTES = 200

# The runtime's init-phase error types (AWS Lambda Developer Guide, troubleshooting-invocation;
# awslambdaric bootstrap): the handler never ran. awslambdaric also reports any exception that
# app.py raises at import with an empty requestId, as no invocation had begun.
INIT_ERROR_TYPES = frozenset(
    {
        "Runtime.ImportModuleError",
        "Runtime.HandlerNotFound",
        "Runtime.UserCodeSyntaxError",
        "Runtime.MalformedHandlerName",
        "Runtime.BadFunctionCode",
        "Runtime.InvalidEntrypoint",
    }
)


@dataclass(frozen=True)
class FunctionReport:
    """How one function answered the self-test: ``kind`` is one of the constants above."""

    handler: str
    function: str
    kind: str
    error_type: str
    error_message: str
    duration_ms: float
    published: Mapping[str, str]
    request_id: str = ""
    answer: str = ""
    """The first 200 bytes of what the function returned, when it is not the self-test answer
    or not an error document."""

    @property
    def ok(self) -> bool:
        return self.kind == ANSWERED

    @property
    def initialized(self) -> bool:
        """The function got as far as running its handler."""
        return self.kind in (ANSWERED, RAISED, OTHER_ANSWER)

    @property
    def hint(self) -> str:
        return HINTS.get(self.kind, "")

    def describe(self) -> str:
        """What happened, in one line (without the function name)."""
        if self.kind == ANSWERED:
            published = ", ".join(f"{o}={m}" for o, m in self.published.items())
            return "ok" + (f", published {published}" if published else "")
        if self.kind == OTHER_ANSWER:
            return f"{self.kind}: {self.answer!r}"
        detail = f"{self.kind}: {self.error_type}: {self.error_message}"
        if self.kind == RAISED and self.request_id:
            detail += f" (request id {self.request_id})"
        return detail

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "kind": self.kind,
            "initialized": self.initialized,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "request_id": self.request_id,
            "answer": self.answer,
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


def _preview(payload: bytes) -> str:
    return payload[:ANSWER_PREVIEW_BYTES].decode("utf-8", errors="replace")


def classify_answer(response: Mapping[str, Any], payload: bytes) -> dict[str, Any]:
    """Pure: the :class:`FunctionReport` fields that an Invoke response and its payload give.

    Lambda answers a function error with ``FunctionError`` set (header
    ``X-Amz-Function-Error``) and the runtime's error document as the payload:
    ``errorType``, ``errorMessage`` and ``requestId`` (empty when init failed, as no request had
    begun).
    """
    try:
        body: Any = json.loads(payload or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    function_error = str(response.get("FunctionError") or "")
    invoke_request = str(response.get("ResponseMetadata", {}).get("RequestId", ""))
    if not function_error:
        if isinstance(body, dict) and SELFTEST_KEY in body:
            return {"kind": ANSWERED, "published": dict(body.get("published") or {})}
        return {"kind": OTHER_ANSWER, "answer": _preview(payload)}
    if not (isinstance(body, dict) and ("errorType" in body or "errorMessage" in body)):
        # Not the runtime's error document (a proxy or an emulator answered): show what it was.
        return {
            "kind": RAISED,
            "error_type": function_error,
            "error_message": _preview(payload),
            "request_id": invoke_request,
        }
    error_type = str(body.get("errorType") or function_error)
    message = str(body.get("errorMessage", ""))
    if error_type in INIT_ERROR_TYPES or body.get("requestId") == "":
        return {"kind": NOT_STARTED, "error_type": error_type, "error_message": message}
    return {
        "kind": RAISED,
        "error_type": error_type,
        "error_message": message,
        "request_id": str(body.get("requestId") or invoke_request),
    }


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
    fields: dict[str, Any]
    try:
        response = client.invoke(
            FunctionName=function, InvocationType="RequestResponse", Payload=payload
        )
        fields = classify_answer(response, response["Payload"].read())
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
        kind = NOT_FOUND if code == "ResourceNotFoundException" else NOT_INVOKED
        fields = {"kind": kind, "error_type": code, "error_message": str(exc)}
    except BotoCoreError as exc:
        fields = {"kind": NOT_INVOKED, "error_type": type(exc).__name__, "error_message": str(exc)}
    duration_ms = (clock() - start) * 1000
    return FunctionReport(
        handler=handler,
        function=function,
        kind=fields["kind"],
        error_type=fields.get("error_type", ""),
        error_message=fields.get("error_message", ""),
        duration_ms=duration_ms,
        published=fields.get("published", {}),
        request_id=fields.get("request_id", ""),
        answer=fields.get("answer", ""),
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
    """One line per function (name, duration, what happened), then one hint per failure kind."""
    lines = [
        f"{report.function.rsplit(':', 1)[-1]} {report.duration_ms:.0f} ms: {report.describe()}"
        for report in reports
    ]
    kinds = dict.fromkeys(r.kind for r in reports if not r.ok)
    lines += [f"hint ({kind}): {HINTS[kind]}" for kind in kinds]
    return lines
