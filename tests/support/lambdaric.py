"""Run a packaged function the way Lambda runs it: ``python -m awslambdaric <Handler>`` in its own
process, talking to a Lambda Runtime API that this module serves on 127.0.0.1.

The Runtime API contract (version 2018-06-01; AWS Lambda Developer Guide, runtimes-api):

- ``GET /2018-06-01/runtime/invocation/next`` blocks until there is an event; the body is the
  event, the headers ``Lambda-Runtime-Aws-Request-Id``, ``Lambda-Runtime-Deadline-Ms``,
  ``Lambda-Runtime-Invoked-Function-Arn`` and ``Lambda-Runtime-Trace-Id`` describe it. The first
  call also tells Lambda that the function finished initializing.
- ``POST /2018-06-01/runtime/invocation/{id}/response`` and ``.../{id}/error`` answer 202.
- ``POST /2018-06-01/runtime/init/error`` (202) reports a failed init, e.g.
  ``Runtime.HandlerNotFound`` when ``getattr(module, name)`` fails in awslambdaric's
  ``bootstrap._get_handler``; the process then exits.

The runtime client writes every log line to stdout (awslambdaric ``StandardLogSink`` when
``_LAMBDA_TELEMETRY_LOG_FD`` is unset) and flushes each write, so the size of the captured stdout
file when ``/next`` hands out an event and when the answer arrives brackets that invocation's
lines exactly.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

API = "/2018-06-01/runtime"
_RESULT = re.compile(rf"^{API}/invocation/(?P<id>[^/]+)/(?P<kind>response|error)$")
REGION = "us-east-1"
ACCOUNT = "111122223333"  # the account of the stage topic ARNs in .chalice/config.json
TIMEOUT_SECONDS = 90.0  # generous: CI machines start 11 interpreters at once on 2 cores


@dataclass
class Invocation:
    """One event handed to the function and what came back."""

    request_id: str
    payload: bytes
    log_start: int = 0
    log_end: int = 0
    kind: str = ""
    """``response`` or ``error`` once answered."""
    body: Any = None
    error_type_header: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def ok(self) -> bool:
        return self.kind == "response"


class LambdaFunction:
    """One execution environment: a Runtime API server and the function's process."""

    def __init__(
        self, name: str, handler: str, task: Path, env: Mapping[str, str], label: str = ""
    ) -> None:
        self.name = name
        self.handler = handler
        self.task = task
        self.stdout_path = task.parent / f"{name}{label}.stdout"
        self.stderr_path = task.parent / f"{name}{label}.stderr"
        self.init_error: dict[str, Any] | None = None
        self.init_error_type = ""
        self.initialized = threading.Event()
        self.ended = threading.Event()
        self._settled = threading.Event()
        """Set once initialized, failed to initialize, or ended: what :meth:`wait_initialized`
        waits for (an event to wait on, where polling woke every waiter fifty times a second)."""
        self._pending: queue.Queue[Invocation | None] = queue.Queue()
        self._invocations: dict[str, Invocation] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._env = dict(env)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self, python: str) -> None:
        """Start the server and ``python -S -m awslambdaric <handler>`` in the task folder."""
        self._thread.start()
        env = dict(self._env, AWS_LAMBDA_RUNTIME_API=self.api_address)
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            # -S: no site module, so nothing from the test's virtualenv is importable; the path is
            # exactly PYTHONPATH (task folder, runtime packages) plus the standard library.
            self.process = subprocess.Popen(
                [python, "-S", "-m", "awslambdaric", self.handler],
                cwd=self.task,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        assert self.process is not None
        self.process.wait()
        self.ended.set()
        self._settled.set()
        self._pending.put(None)  # wakes the /next request the process left waiting, if any

    def wait_initialized(self, timeout: float = TIMEOUT_SECONDS) -> bool:
        """True once the function asked for its first event; False on an init error or exit."""
        if not self._settled.wait(timeout):
            raise TimeoutError(f"{self.name} neither initialized nor failed within {timeout:g} s")
        return self.initialized.is_set()

    def invoke(self, event: Any, timeout: float = TIMEOUT_SECONDS) -> Invocation:
        """Hand ``event`` to the function through ``/next`` and wait for its answer."""
        if not self.wait_initialized():
            raise RuntimeError(f"{self.name} did not initialize\n{self.output()}")
        invocation = Invocation(str(uuid.uuid4()), json.dumps(event).encode())
        self._invocations[invocation.request_id] = invocation
        self._pending.put(invocation)
        if not invocation.done.wait(timeout):
            raise TimeoutError(
                f"{self.name}: no answer to {invocation.request_id}\n{self.output()}"
            )
        return invocation

    def log_lines(self, invocation: Invocation) -> list[str]:
        """What the process wrote to stdout while it handled ``invocation``."""
        with self.stdout_path.open("rb") as log:
            log.seek(invocation.log_start)
            text = log.read(invocation.log_end - invocation.log_start).decode()
        # "\n" ends a log line; the runtime's error report joins its traceback lines with "\r"
        # (bootstrap.ERROR_LOG_LINE_TERMINATE) so that it stays one CloudWatch event.
        return [line for line in text.split("\n") if line.strip()]

    def output(self) -> str:
        return (
            f"--- {self.name} stdout\n{self.stdout_path.read_text(errors='replace')}"
            f"--- stderr\n{self.stderr_path.read_text(errors='replace')}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.server.shutdown()
        self.server.server_close()

    # --- called by the Runtime API server -------------------------------------------------------

    def next_invocation(self) -> Invocation | None:
        """The next event (blocks until there is one); None once the process has ended."""
        self.initialized.set()
        self._settled.set()
        if self.ended.is_set():
            return None
        invocation = self._pending.get()
        if invocation is None:
            return None
        invocation.log_start = self.stdout_path.stat().st_size
        return invocation

    def answer(self, request_id: str, kind: str, body: bytes, error_type: str) -> bool:
        invocation = self._invocations.get(request_id)
        if invocation is None:
            return False
        invocation.log_end = self.stdout_path.stat().st_size
        invocation.kind = kind
        invocation.body = json.loads(body) if body else None
        invocation.error_type_header = error_type
        invocation.done.set()
        return True

    def fail_init(self, body: bytes, error_type: str) -> None:
        self.init_error = json.loads(body) if body else {}
        self.init_error_type = error_type
        self._settled.set()


class _RuntimeApiHandler(BaseHTTPRequestHandler):
    """The Runtime API of one function (``function``, set by :func:`_handler_class`)."""

    function: LambdaFunction
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: bytes = b"", headers: Mapping[str, str] = {}) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            return  # the process ended while waiting for an event (stop())

    def do_GET(self) -> None:
        if self.path != f"{API}/invocation/next":
            self._reply(404)
            return
        invocation = self.function.next_invocation()
        if invocation is None:
            self._reply(500)
            return
        deadline_ms = int((time.time() + TIMEOUT_SECONDS) * 1000)
        self._reply(
            200,
            invocation.payload,
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": (
                    f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function.name}"
                ),
                "Lambda-Runtime-Trace-Id": (
                    f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]};Sampled=0"
                ),
            },
        )

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type", "")
        if self.path == f"{API}/init/error":
            self.function.fail_init(body, error_type)
            self._reply(202)
            return
        match = _RESULT.match(self.path)
        if match and self.function.answer(match["id"], match["kind"], body, error_type):
            self._reply(202)
            return
        self._reply(404)


def _handler_class(function: LambdaFunction) -> type[BaseHTTPRequestHandler]:
    return type("RuntimeApiHandler", (_RuntimeApiHandler,), {"function": function})


def lambda_environment(
    name: str, template_env: Mapping[str, str], pythonpath: list[Path], endpoint_url: str
) -> dict[str, str]:
    """The environment Lambda gives a function (the reserved variables of
    docs.aws.amazon.com/lambda/latest/dg/configuration-envvars-runtime.html), its own variables
    from the template, and ``AWS_ENDPOINT_URL`` pointing every boto3 client at moto_server."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDA_TASK_ROOT": str(pythonpath[0]),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"2026/11/30/[$LATEST]{uuid.uuid4().hex}",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        **template_env,
        "AWS_ENDPOINT_URL": endpoint_url,
    }
