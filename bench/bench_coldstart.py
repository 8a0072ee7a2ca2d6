"""Benchmark: cold start of the packaged app, boto3 clients built at init vs at the first event.

Packages the dev stage (``chalice package``), unzips ``deployment.zip`` and starts fresh Python
processes that can import only the unzipped package and what the Lambda runtime provides
(``.venv/lambda-runtime``: awslambdaric, boto3; built by ``make``), as ``tests/runtime`` does.
Each process imports ``app`` (the init phase), then calls ``app.on_iam_console_mfa_failure``
twice with the self-test event, which makes no AWS call: what the first call costs beyond the
second is what the first event of an execution environment pays for setup.

  before: ``AWS_LAMBDA_FUNCTION_NAME`` unset, so app.py builds the SNS and DynamoDB clients at the
          first event (what every version before issue 9 did);
  after:  ``AWS_LAMBDA_FUNCTION_NAME`` set, as in Lambda: app.py builds them during init.

Runs alternate (before, after, before, ...) so both see the same machine load; the figures are
medians over the runs and the ratio compares them within this one run.

Usage: .venv/bin/python bench/bench_coldstart.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PACKAGES = ROOT / ".venv" / "lambda-runtime"
HANDLER = "on_iam_console_mfa_failure"
FUNCTION = f"mfawatch-dev-{HANDLER}"

PROBE = """
import json, sys, time
t0 = time.perf_counter()
import app
t1 = time.perf_counter()

class Context:
    function_name = sys.argv[2]
    invoked_function_arn = "arn:aws:lambda:us-east-1:111122223333:function:" + sys.argv[2]
    aws_request_id = "bench"

handler = getattr(app, sys.argv[1])
event = json.loads(sys.argv[3])
t2 = time.perf_counter()
handler(event, Context())
t3 = time.perf_counter()
handler(event, Context())
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first": t3 - t2, "second": t4 - t3}))
"""


def package(work: Path) -> tuple[Path, dict[str, str]]:
    """Unzipped dev package and the function's environment from the template."""
    out = work / "out"
    subprocess.run(
        [str(Path(sys.executable).parent / "chalice"), "package", "--stage", "dev", str(out)],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        | {"AWS_DEFAULT_REGION": "us-east-1"},
        check=True,
        capture_output=True,
    )
    task = work / "task"
    with zipfile.ZipFile(out / "deployment.zip") as archive:
        archive.extractall(task)
    template = json.loads((out / "sam.json").read_text())
    (props,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
        and r["Properties"]["Handler"] == f"app.{HANDLER}"
    ]
    return task, dict(props.get("Environment", {}).get("Variables", {}))


def measure(task: Path, variables: dict[str, str], in_lambda: bool) -> dict[str, float]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": f"{task}{os.pathsep}{RUNTIME_PACKAGES}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        **variables,
    }
    if in_lambda:
        env["AWS_LAMBDA_FUNCTION_NAME"] = FUNCTION
    event = json.dumps({"mfawatch-selftest": {"version": 1, "publish": False}})
    result = subprocess.run(
        [os.path.realpath(sys.executable), "-S", "-c", PROBE, HANDLER, FUNCTION, event],
        cwd=task,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return {k: v * 1000 for k, v in json.loads(result.stdout.splitlines()[-1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if not (RUNTIME_PACKAGES / "boto3").is_dir():
        sys.exit(f"{RUNTIME_PACKAGES} missing: run `make test` (it installs the runtime tier)")
    with tempfile.TemporaryDirectory() as tmp:
        task, variables = package(Path(tmp))
        measure(task, variables, True)  # warm the file cache; not counted
        runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        for _ in range(args.runs):
            runs["before"].append(measure(task, variables, False))
            runs["after"].append(measure(task, variables, True))
    print(
        f"cold start of {FUNCTION} (unzipped package, python -S), median of {args.runs} runs each"
    )
    columns = ("import app (init)", "first event", "second event", "init + first")
    print(f"{'':8} {columns[0]:>18} {columns[1]:>12} {columns[2]:>13} {columns[3]:>13}")
    medians = {}
    for label, samples in runs.items():
        m = {k: statistics.median(s[k] for s in samples) for k in ("import", "first", "second")}
        medians[label] = m
        print(
            f"{label:8} {m['import']:>15.1f} ms {m['first']:>9.1f} ms {m['second']:>10.2f} ms "
            f"{m['import'] + m['first']:>10.1f} ms"
        )
    before, after = medians["before"], medians["after"]
    moved = before["first"] - after["first"]
    print(
        f"after/before: init {after['import'] / before['import']:.2f}, first event "
        f"{after['first'] / before['first']:.3f}, init + first event "
        f"{(after['import'] + after['first']) / (before['import'] + before['first']):.2f}; "
        f"the first event no longer pays {moved:.0f} ms of client setup (init does)"
    )


if __name__ == "__main__":
    main()
