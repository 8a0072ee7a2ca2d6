"""Shared test helpers: event fixtures, the shared sample corpus, the rules, and ``moto_server``
on 127.0.0.1 (started and stopped by the fixture, never assumed to be running) for the
integration and runtime tiers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: The tests' own stages (config.json and the stages' IAM policies): every test and every command
#: a test runs reads these, never the checkout's .chalice/, which a user edits and deploys. Set
#: before mfawatch.paths is imported, and inherited by the commands tests start.
STAGE_DIR = Path(__file__).resolve().parent / "stage"
os.environ["MFAWATCH_CHALICE_DIR"] = str(STAGE_DIR)

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from chalicelib.core.rules import RuleSet, load_bundle  # noqa: E402
from mfawatch.paths import CHALICE_DIR, REPO_ROOT  # noqa: E402
from tests.support.environment import (  # noqa: E402
    drop_endpoint_overrides,
    share_service_models,
)

assert CHALICE_DIR == STAGE_DIR, "mfawatch.paths was imported before tests/conftest.py"

# The shell that deployed a stage to moto_server (docs/deploy.md) still exports AWS_ENDPOINT_URL.
drop_endpoint_overrides(os.environ)

ROOT = REPO_ROOT  # the checkout, for the tests that import it from here

# Hypothesis's per-example deadline is a timing assertion, and these machines are shared and noisy:
# properties are checked for what they compute, never for how fast (benchmarks measure speed).
settings.register_profile("mfawatch", deadline=None)
# `make quick` (MFAWATCH_QUICK=1) runs the unit tests with a tenth of the property-test examples,
# so the tier stays quick while iterating; `make test` runs them all.
settings.register_profile("quick", settings.get_profile("mfawatch"), max_examples=10)
QUICK = os.environ.get("MFAWATCH_QUICK") == "1"
settings.load_profile("quick" if QUICK else "mfawatch")


def examples(full: int) -> int:
    """How many examples a property test with its own settings runs: ``full``, or a tenth (at
    least 10) under ``make quick``."""
    return max(10, full // 10) if QUICK else full


def pytest_configure(config: pytest.Config) -> None:
    """The ``xdist_group`` marker that xdist registers, registered without xdist too, so that
    ``pytest -p no:xdist`` (one process, for profiling and CPU figures) runs under
    ``--strict-markers``."""
    config.addinivalue_line("markers", "xdist_group(name): the tests' unit of work under xdist")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """How ``make test`` shares the tests between its workers (``--dist loadgroup
    --no-loadscope-reorder``): a module is one unit of work, so its module fixtures (a packaged
    zip, a moto server, a fault harness run) are built once, except a module marked ``spread``,
    whose tests go one by one. The modules marked ``slow`` or ``integration`` go first and the
    short units last, so the two workers finish together (xdist's own order, most tests first,
    left a long module for the end)."""
    for item in items:
        if item.get_closest_marker("spread") is None:
            module = item.nodeid.split("::", 1)[0].removeprefix("tests/").removesuffix(".py")
            item.add_marker(pytest.mark.xdist_group(module))
    items.sort(
        key=lambda item: (
            not any(item.iter_markers("slow")) and not any(item.iter_markers("integration"))
        )
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Once every test module is imported: when one of them uses the SDK, its sessions share
    their service models (tests/support/environment.py); the unit tier never imports it."""
    if "botocore.session" in sys.modules:
        share_service_models()


EVENTS = ROOT / "tests" / "events"
SHARED = ROOT.parent / "shared"
SAMPLES = SHARED / "cloudtrail-samples"


def load_event(name: str) -> dict[str, Any]:
    """A fixture from tests/events/ by name (without .json)."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    return event


def sample_paths() -> list[Path]:
    """The shared CloudTrail samples (empty when ../shared is absent, as in a user's clone)."""
    return sorted(SAMPLES.glob("*.json")) if SAMPLES.is_dir() else []


def load_sample(path: Path) -> list[dict[str, Any]]:
    """A shared sample file's events: a record, a list, a Records wrapper or an envelope."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(document, dict) and isinstance(document.get("Records"), list):
        return list(document["Records"])
    if isinstance(document, list):
        return document
    return [document]


needs_shared = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason="../shared/cloudtrail-samples absent"
)


def chalice_project(dest: Path) -> Path:
    """A Chalice project folder for ``chalice package`` and ``chalice.test.Client``: what
    Chalice packages (``app.py``, ``chalicelib/``) with the tests' stages as its ``.chalice/``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "app.py", dest / "app.py")
    shutil.copytree(
        ROOT / "chalicelib", dest / "chalicelib", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(STAGE_DIR, dest / ".chalice")
    return dest


@pytest.fixture(scope="session")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One :func:`chalice_project` for the session (``chalice.test.Client``'s project_dir)."""
    return chalice_project(tmp_path_factory.mktemp("chalice-project"))


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return load_bundle()


MOTO_SERVER = Path(sys.executable).parent / "moto_server"
#: moto_server with DynamoDB's per-request atomicity (see that module).
ATOMIC_MOTO_SERVER = Path(__file__).with_name("atomic_moto_server.py")
MOTO_ACCOUNT = "111122223333"  # the account of the stage ARNs in tests/stage/config.json


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answering(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not answer on {url} within {timeout:g} s")


@contextmanager
def running_moto_server(timeout: float = 120.0) -> Iterator[str]:
    """Start a moto server on 127.0.0.1 (a free port), atomic per request as DynamoDB is
    (``atomic_moto_server.py``); yield its URL and stop it on exit. The fixture below and the
    benchmarks under ``bench/`` use it. ``timeout`` only bounds the wait for a server that never
    answers: on a loaded machine, with the checks and the other worker starting beside it, moto
    took over 30 s to start, and the session fixture's error failed every test that used it."""
    port = free_port()
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        MOTO_ACCOUNT_ID=MOTO_ACCOUNT,
    )
    process = subprocess.Popen(
        [sys.executable, str(ATOMIC_MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(url, process, timeout=timeout)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint URL of a fresh moto server on 127.0.0.1 (a free port), atomic per request as
    DynamoDB is (``atomic_moto_server.py``)."""
    if not MOTO_SERVER.exists():
        pytest.skip(f"{MOTO_SERVER} not installed (pip install 'moto[server]')")
    with running_moto_server() as url:
        yield url
