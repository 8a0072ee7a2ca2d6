"""Benchmark: the delivery promise under load and faults, counted at the wire.

Many concurrent "Lambda execution environments" (threads, each with its own boto3 DynamoDB and
SNS clients and its own ``AlertService``, wired exactly as ``app.py`` wires them) handle an MFA
brute-force storm against ``moto_server`` on 127.0.0.1. The real ``SnsPublisher`` publishes to
the dev stage's two outputs (``alerts``: everything; ``pager``: HIGH+ alerts, escalations and
storm digests), each an SNS topic subscribed by an SQS queue, so what an operator receives is
counted by draining the queues (the SQS body is the SNS envelope; its ``Message`` is the
``sqs`` body of ``MessageStructure=json``: the alert document with the notification ``id``).

The workload (:func:`workload`): failed-MFA ``ConsoleLogin`` events (rule
``iam-console-mfa-failure``) of many users from many IPs within a few minutes, a share of them
delivered twice; successful sign-ins (``sign-in-success``) after some users' failures (MFA
fatigue success) and of users with no failures; Identity Center sign-ins whose TOTP failures
name nobody until the workflow's earlier step is attributed.

Lambda-like retries: an invocation that raises is run again one minute later, then two minutes
after that (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html);
after the third failure Lambda's on-failure destination parks the event: the harness sends the
documented on-failure record (``requestContext``, ``requestPayload``, ``responseContext``,
``responsePayload``) to the stage's failed-events SQS queue, created with the redrive policy and
visibility timeout of ``deploy/resources.yaml``. The scheduled handler ticks once per virtual
minute (reserved concurrency 1) during the load.

Faults (:class:`Scenario`), injected through botocore event hooks on every environment's clients:
DynamoDB errors that survive botocore's retries (a ``ClientError`` raised from ``before-send``,
which botocore does not retry), throttling at the HTTP level (a ``400 ThrottlingException`` /
``ProvisionedThroughputExceededException`` response returned from ``before-send``, which
botocore's retry handler sees and retries), SNS publish failures, and crashes (a
``BaseException`` raised in ``before-send.sns.Publish`` for every Nth publish: the invocation
dies as on a Lambda timeout or out-of-memory, before the first or between two outputs, and
Lambda retries it later in a fresh environment).

When the load is done the outage ends: faults stop, the consumer of parked events
(``chalicelib.pipeline.parked.ParkedEvents``, what ``app.consume_parked_events`` runs) reads the
failed-events queue as its SQS event source does (batches of up to 10 records, messages not in
``batchItemFailures`` deleted) and replays each record's original event through the same
service, and the scheduler ticks minute by minute until nothing more comes out. Then the queues
are drained and the invariants measured:

- notifications by kind (on ``alerts``, which gets every notification);
- ids delivered twice, per output;
- per rule, the counts of alerts + summaries + storm digests (every message received) against
  the distinct events;
- escalations lost: per output, principals whose distinct failures include ``N`` within ``M``
  minutes (the stage's brute-force threshold) that got neither a brute-force escalation nor a
  place in a storm digest's held escalations, plus MFA fatigue successes (a success after
  ``K`` failures within ``T`` minutes) whose CRITICAL escalation never arrived;
- fail-opens: alerts received with the "dedup unavailable" note;
- events parked after three failed attempts, those the consumer replayed, and what is left on
  the failed-events and final dead-letter queues (nothing, when the consumer works);
- DynamoDB requests per delivery counted at the wire (a ``before-send.dynamodb`` hook counts
  every HTTP request, botocore retries included), under load by delivery type, and in a
  sequential pass (one client, one delivery at a time) per type: alert, repeat, duplicate,
  Identity Center context step, successful sign-in with no recent failures.

Usage: .venv/bin/python bench/bench_faults.py [--scenario NAME ...] [--size full|ci]
[--events 3000] [--threads 64] [--seed 1] [--seeds FIRST-LAST]. The CI size runs in
tests/integration/test_faults.py; ``--size ci --seeds 1-40`` runs it once per seed and counts the
runs that break an invariant (a race shows up in some runs only: the threads' timing, not the
seed, decides the interleaving).
"""

from __future__ import annotations

import argparse
import faulthandler
import heapq
import itertools
import json
import logging
import os
import random
import re
import signal
import sys
import threading
import time
import traceback
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# First: tests/conftest.py points mfawatch.paths at the tests' own stages (tests/stage/), and
# asserts that nothing imported mfawatch.paths before it.
from tests.conftest import load_event  # noqa: E402

# isort: split

from chalicelib.aws.dynamo import DynamoStateStore, create_state_table  # noqa: E402
from chalicelib.aws.sns import SnsPublisher  # noqa: E402
from chalicelib.aws.sqs import SqsVisibility  # noqa: E402
from chalicelib.core.config import (  # noqa: E402
    ENV_OUTPUTS,
    ENV_TABLE_NAME,
    ENV_TOPIC_ARN,
    Settings,
    settings_from_env,
)
from chalicelib.core.documents import delivery_mark  # noqa: E402
from chalicelib.core.records import envelope_of  # noqa: E402
from chalicelib.core.rules import RuleSet, load_bundle  # noqa: E402
from chalicelib.pipeline.delivery import CONFIRM_ATTEMPTS  # noqa: E402
from chalicelib.pipeline.observability import MemoryMetrics  # noqa: E402
from chalicelib.pipeline.parked import ParkedEvents  # noqa: E402
from chalicelib.pipeline.service import AlertService  # noqa: E402
from mfawatch.deploy.templates import (  # noqa: E402
    FAILED_EVENTS_QUEUE,
    FINAL_DEAD_LETTER_QUEUE,
    StageNames,
    load_resources_template,
    load_stage_config,
)
from tests.factory import on_failure_record, sqs_event_record  # noqa: E402

STAGE = "dev"
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
BASE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

RULE_FAILURE = "iam-console-mfa-failure"
RULE_SUCCESS = "sign-in-success"
RULE_IC_STEP = "identity-center-sign-in-steps"
RULE_IC_FAILURE = "identity-center-mfa-failure"
#: Rules whose every event must be accounted for by alerts, summaries and storm digests.
COUNTED_RULES = (RULE_FAILURE, RULE_IC_FAILURE)
COUNTED_KINDS = ("alert", "summary", "storm")
KIND_ORDER = ("alert", "summary", "storm", "escalation", "heartbeat")

#: Lambda runs a failed asynchronous invocation two more times, one minute and then two minutes
#: later (invocation-async-error-handling, cited in the module docstring).
RETRY_DELAYS = (60.0, 120.0)
FAIL_OPEN_NOTE = "dedup unavailable"
#: How long the drain phase waits with nothing sent before it calls the scheduler done.
QUIET_MINUTES = 30
#: When the consumer reads the failed-events queue: after the outage, once the claims' leases of
#: the last attempts have run out (its retries under faults are unit-tested, tests/unit).
REDRIVE_AFTER_MINUTES = 10
#: How long (real seconds) the consumer waits for records it failed to come back.
CONSUMER_WAIT_SECONDS = 120.0
MAX_DRAIN_MINUTES = 360


# --- the workload -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    """How big a run is. The defaults are the issue's load; the CI test uses a smaller one."""

    events: int = 3000
    users: int = 200
    ips: int = 300
    minutes: float = 5.0
    duplicates: float = 0.3
    fatigue_successes: int = 12
    """Successful sign-ins of users who just failed MFA (expected: a CRITICAL escalation)."""
    quiet_successes: int = 4
    """Successful sign-ins of users with no failures (expected: nothing)."""
    workflows: int = 5
    """Identity Center sign-ins: a named step, then unnamed TOTP failures of the same workflow."""
    ic_failures: int = 3
    threads: int = 64
    seed: int = 1


#: The size ``tests/integration/test_faults.py`` runs in ``make test`` (``--size ci`` here).
CI_SIZE = Size(
    events=36,
    users=3,
    ips=8,
    fatigue_successes=3,
    quiet_successes=2,
    workflows=2,
    threads=3,
    seed=7,
)


@dataclass(frozen=True)
class Delivery:
    """One EventBridge delivery of an event to a rule's Lambda function."""

    at: float
    """Processing time (epoch seconds): event time plus CloudTrail lag, later for redeliveries."""
    rule: str
    envelope: dict[str, Any]
    kind: str
    """failure / success / ic-step / ic-failure: what the workload meant it to exercise."""

    @property
    def event_id(self) -> str:
        return str(self.envelope["detail"]["eventID"])


def _stamp(record: dict[str, Any], event_id: str, t: float) -> dict[str, Any]:
    record["eventID"] = event_id
    record["eventTime"] = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return record


def _ip(n: int) -> str:
    return f"198.51.{n // 250}.{n % 250}"


def _identity_center_step(event_id: str, t: float, workflow: str, user: str) -> dict[str, Any]:
    """The password step of an Identity Center sign-in: it names the user of the workflow."""
    record = _stamp(load_event("idc-new-credentialchallenge-password"), event_id, t)
    record["additionalEventData"].update(AuthWorkflowID=workflow, UserName=user)
    return record


def workload(size: Size) -> list[Delivery]:
    """Every delivery, sorted by processing time; deterministic for a seed."""
    rng = random.Random(size.seed)
    start = BASE.timestamp()
    span = size.minutes * 60
    events: list[tuple[float, str, dict[str, Any], str]] = []
    failures_of: dict[str, list[float]] = {}
    for i in range(size.events):
        t = start + rng.uniform(0, span)
        user = f"user-{rng.randrange(size.users):04d}"
        record = _stamp(load_event("iam-consolelogin-failure-mfa-yes"), f"fail-{i:06d}", t)
        record["userIdentity"]["userName"] = user
        record["sourceIPAddress"] = _ip(rng.randrange(size.ips))
        events.append((t, RULE_FAILURE, record, "failure"))
        failures_of.setdefault(user, []).append(t)
    victims = rng.sample(sorted(failures_of), min(size.fatigue_successes, len(failures_of)))
    for i, user in enumerate(victims):
        t = max(failures_of[user]) + 30 + 5 * i
        record = _stamp(load_event("iam-consolelogin-success-mfa-yes"), f"success-{i:04d}", t)
        record["userIdentity"]["userName"] = user
        events.append((t, RULE_SUCCESS, record, "success"))
    for i in range(size.quiet_successes):
        t = start + rng.uniform(0, span)
        record = _stamp(load_event("iam-consolelogin-success-mfa-yes"), f"quiet-{i:04d}", t)
        record["userIdentity"]["userName"] = f"quiet-{i:04d}"
        events.append((t, RULE_SUCCESS, record, "success"))
    for w in range(size.workflows):
        t = start + rng.uniform(0, span - 60)
        workflow = f"6d1e7c2a-9f3b-4e8d-a1c5-{w:012d}"
        ip = f"203.0.113.{w + 1}"
        step = _identity_center_step(f"ic-step-{w:04d}", t, workflow, f"ic-user-{w}@example.com")
        step["sourceIPAddress"] = ip
        events.append((t, RULE_IC_STEP, step, "ic-step"))
        for k in range(size.ic_failures):
            failure = _stamp(
                load_event("idc-new-credentialverification-totp-failure"),
                f"ic-fail-{w:04d}-{k}",
                t + 10 * (k + 1),
            )
            failure["additionalEventData"]["AuthWorkflowID"] = workflow
            failure["sourceIPAddress"] = ip
            events.append((t + 10 * (k + 1), RULE_IC_FAILURE, failure, "ic-failure"))
    deliveries: list[Delivery] = []
    for t, rule, record, kind in events:
        envelope = envelope_of(record)
        deliveries.append(Delivery(t + rng.uniform(0, 5), rule, envelope, kind))
        if rng.random() < size.duplicates:
            deliveries.append(Delivery(t + rng.uniform(5, 120), rule, envelope, kind))
    deliveries.sort(key=lambda d: (d.at, d.event_id))
    return deliveries


# --- faults -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """What goes wrong while the load runs."""

    name: str
    dynamodb_errors: float = 0.0
    """Share of DynamoDB API calls failing with an error botocore does not retry (as after its
    retries ran out)."""
    throttling: float = 0.0
    """Share of DynamoDB HTTP requests answered ``400 ThrottlingException`` (botocore retries)."""
    sns_errors: float = 0.0
    """Share of SNS Publish calls failing."""
    crash_every: int = 0
    """Every Nth SNS Publish (counted over all environments) kills its invocation."""


SCENARIOS = (
    Scenario("no faults"),
    Scenario("10% DynamoDB errors", dynamodb_errors=0.10),
    Scenario("throttling", throttling=0.20),
    Scenario("SNS failures", sns_errors=0.10),
    Scenario("crashes between outputs", crash_every=5),
)


class Crash(BaseException):
    """A Lambda timeout or out-of-memory: the invocation dies, no ``except Exception`` runs."""


class _Body:
    """The ``raw`` of a botocore ``AWSResponse``: something with ``stream()``."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def throttled(url: str, code: str) -> AWSResponse:
    """The HTTP response DynamoDB sends when it throttles (JSON 1.0 protocol error)."""
    body = json.dumps(
        {
            "__type": f"com.amazonaws.dynamodb.v20120810#{code}",
            "message": "Rate of requests exceeds the allowed throughput (injected).",
        }
    ).encode()
    headers = HTTPHeaders.from_dict(
        {
            "Content-Type": "application/x-amz-json-1.0",
            "Content-Length": str(len(body)),
            "x-amzn-RequestId": "injected-throttle",
        }
    )
    return AWSResponse(url, 400, headers, _Body(body))


class Faults:
    """The scenario's faults, attached to each environment's clients (thread-safe)."""

    def __init__(self, scenario: Scenario, seed: int, outputs: dict[str, str]) -> None:
        self.scenario = scenario
        self.enabled = True
        self._seed = seed
        self._topic_output = {arn: name for name, arn in outputs.items()}
        self._first_output = next(iter(outputs))
        self._lock = threading.Lock()
        self._publishes = 0
        self.injected: Counter[str] = Counter()
        self.unconfirmed: Counter[str] = Counter()
        """Delivery marks (``id@output``) by the number of their confirmations that failed."""

    def _count(self, what: str) -> None:
        with self._lock:
            self.injected[what] += 1

    def _note_unconfirmed(self, body: bytes | str | None) -> None:
        """A failed ``UpdateItem`` that records outputs' confirmations (an ``ADD`` to the
        ``delivered`` set): after :data:`CONFIRM_ATTEMPTS` failures the invocation gives up and
        its retry publishes to that output again, with the same id, as the guarantee allows."""
        request = json.loads(body or "{}")
        if "delivered" not in request.get("ExpressionAttributeNames", {}).values():
            return
        marks = [
            m
            for v in request.get("ExpressionAttributeValues", {}).values()
            for m in v.get("SS", [])
        ]
        with self._lock:
            self.unconfirmed.update(marks)

    def attach(self, dynamodb: Any, sns: Any, stream: int) -> None:
        rng = random.Random(self._seed * 1_000_003 + stream)
        s = self.scenario

        def dynamodb_fault(request: Any, event_name: str, **_: Any) -> AWSResponse | None:
            if not self.enabled:
                return None
            operation = event_name.rsplit(".", 1)[-1]
            if s.dynamodb_errors and rng.random() < s.dynamodb_errors:
                code = rng.choice(("InternalServerError", "ProvisionedThroughputExceededException"))
                self._count(f"DynamoDB {code}")
                if operation == "UpdateItem":
                    self._note_unconfirmed(request.body)
                raise ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)
            if s.throttling and rng.random() < s.throttling:
                code = rng.choice(("ThrottlingException", "ProvisionedThroughputExceededException"))
                self._count(f"DynamoDB HTTP 400 {code}")
                return throttled(request.url, code)
            return None

        def sns_fault(request: Any, **_: Any) -> None:
            if not self.enabled:
                return
            body = request.body.decode() if isinstance(request.body, bytes) else request.body
            topic = urllib.parse.parse_qs(str(body or "")).get("TopicArn", [""])[0]
            output = self._topic_output.get(topic, "?")
            with self._lock:
                self._publishes += 1
                crash = bool(s.crash_every) and self._publishes % s.crash_every == 0
            if crash:
                where = "before the first output" if output == self._first_output else "between"
                self._count(f"crash {where} (publish to {output})")
                raise Crash(f"invocation died publishing to {output}")
            if s.sns_errors and rng.random() < s.sns_errors:
                self._count(f"SNS error on {output}")
                raise ClientError({"Error": {"Code": "InternalError", "Message": "inj"}}, "Publish")

        dynamodb.meta.events.register("before-send.dynamodb", dynamodb_fault)
        sns.meta.events.register("before-send.sns.Publish", sns_fault)


# --- the deployment on moto_server ---------------------------------------------------------------


def lambda_timeout(rules: RuleSet) -> float:
    """The event handlers' timeout in seconds, from ``.chalice/config.json``."""
    handler = rules.get(RULE_FAILURE).handler_name
    return float(load_stage_config(STAGE).lookup(handler, "lambda_timeout", 60))


_SESSION = boto3.session.Session()
_SESSION_LOCK = threading.Lock()


def client(endpoint: str, service: str) -> Any:
    """A client as Lambda builds it (default configuration), pointed at moto_server. Every
    client is its own (connections, retry state, event hooks), and all are made from one
    session, one at a time: a session is not thread-safe, and a session per client parsed the
    service models and registered botocore's default handlers again for every client (12 ms
    of CPU, against 2 ms), and a run makes dozens (every environment, a new one per crash)."""
    with _SESSION_LOCK:
        # The service is a runtime str; boto3-stubs overload literal names only.
        return _SESSION.client(  # type: ignore[call-overload]
            service, endpoint_url=endpoint, region_name=REGION, **CREDENTIALS
        )


@dataclass
class Deployment:
    """One scenario's table, SNS topics and SQS queues, and the stage settings pointing at them."""

    endpoint: str
    settings: Settings
    queues: dict[str, str]
    """output name -> SQS queue URL subscribed to its topic."""
    topics: dict[str, str]
    failed_events: str = ""
    """The on-failure destination's queue URL (redrive policy to ``dead_letters``)."""
    failed_events_arn: str = ""
    dead_letters: str = ""

    def remove(self) -> None:
        """Delete what :func:`deploy` created: tests share one moto_server per session, and
        another test may list the account's topics or subscriptions."""
        sns, sqs, dynamodb = (client(self.endpoint, s) for s in ("sns", "sqs", "dynamodb"))
        for topic in self.topics.values():
            for subscription in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]:
                sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
            sns.delete_topic(TopicArn=topic)
        for queue in (*self.queues.values(), self.failed_events, self.dead_letters):
            if queue:
                sqs.delete_queue(QueueUrl=queue)
        dynamodb.delete_table(TableName=self.settings.table_name)


def _queue_properties(logical: str) -> dict[str, Any]:
    """A queue's properties in deploy/resources.yaml (the harness's queues are the stage's)."""
    return dict(load_resources_template()["Resources"][logical]["Properties"])


def create_parked_event_queues(sqs: Any, name: str) -> tuple[str, str, str]:
    """The failed-events queue and its final dead-letter queue, with deploy/resources.yaml's
    visibility timeout and redrive policy: (queue URL, queue ARN, dead-letter queue URL)."""
    dead = sqs.create_queue(QueueName=f"{name}-dead-letters")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])
    properties = _queue_properties(FAILED_EVENTS_QUEUE)
    assert FINAL_DEAD_LETTER_QUEUE in json.dumps(properties["RedrivePolicy"])
    redrive = {
        "deadLetterTargetArn": dead_arn["Attributes"]["QueueArn"],
        "maxReceiveCount": properties["RedrivePolicy"]["maxReceiveCount"],
    }
    queue = sqs.create_queue(
        QueueName=f"{name}-failed-events",
        Attributes={
            "VisibilityTimeout": str(properties["VisibilityTimeout"]),
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    return queue, arn["Attributes"]["QueueArn"], dead


def deploy(endpoint: str, name: str) -> Deployment:
    """Create the table and, per output of the dev stage, a topic with an SQS subscription."""
    env = load_stage_config(STAGE).environment()
    outputs = json.loads(env[ENV_OUTPUTS])
    sns, sqs, dynamodb = (client(endpoint, s) for s in ("sns", "sqs", "dynamodb"))
    topics: dict[str, str] = {}
    queues: dict[str, str] = {}
    for output in outputs:
        topic = sns.create_topic(Name=f"{name}-{output}")["TopicArn"]
        queue = sqs.create_queue(QueueName=f"{name}-{output}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
        outputs[output]["topic_arn"] = topic
        topics[output], queues[output] = topic, queue
    table = f"{name}-state"
    create_state_table(dynamodb, table)
    env.update(
        {
            ENV_OUTPUTS: json.dumps(outputs),
            ENV_TOPIC_ARN: topics[next(iter(outputs))],
            ENV_TABLE_NAME: table,
        }
    )
    failed, failed_arn, dead = create_parked_event_queues(sqs, name)
    return Deployment(endpoint, settings_from_env(env), queues, topics, failed, failed_arn, dead)


def function_arn(rules: RuleSet, rule_id: str) -> str:
    """The ARN of the rule's function (its on-failure records name it)."""
    name = StageNames("mfawatch", STAGE).function(rules.get(rule_id).handler_name)
    return f"arn:aws:lambda:{REGION}:123456789012:function:{name}"


class OnFailureDestination:
    """What Lambda does after the last failed attempt of an asynchronous invocation: send the
    on-failure record to the failed-events queue (with the function's role)."""

    def __init__(self, deployment: Deployment, rules: RuleSet) -> None:
        self._sqs = client(deployment.endpoint, "sqs")
        self._queue = deployment.failed_events
        self._rules = rules
        self._lock = threading.Lock()

    def park(self, delivery: Delivery, error: str, attempts: int) -> None:
        record = on_failure_record(
            delivery.envelope,
            function_arn(self._rules, delivery.rule),
            attempts=attempts,
            error=(error, f"{error} (injected fault)"),
            request_id=f"{delivery.event_id}-{attempts}",
        )
        with self._lock:
            self._sqs.send_message(QueueUrl=self._queue, MessageBody=json.dumps(record))


class ParkedEventSource:
    """The consumer's SQS event source mapping: receive a batch, invoke the consumer, delete the
    messages it did not report in ``batchItemFailures``; failed ones come back after the
    visibility timeout the consumer set, and after maxReceiveCount go to the dead letters."""

    def __init__(
        self, deployment: Deployment, rules: RuleSet, env: Environment, clock: Callable[[], float]
    ) -> None:
        self._sqs = client(deployment.endpoint, "sqs")
        self._deployment = deployment
        self.consumer = ParkedEvents(
            rules,
            env.service.handle,
            SqsVisibility(self._sqs, deployment.endpoint),
            env.metrics,
            lambda: datetime.fromtimestamp(clock(), UTC),
        )
        self.replayed: list[str] = []
        self.failures = 0

    def poll(self) -> int:
        """One batch (long polling off); the number of records received."""
        d = self._deployment
        messages = self._sqs.receive_message(
            QueueUrl=d.failed_events,
            MaxNumberOfMessages=10,
            AttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        if not messages:
            return 0
        records = [
            sqs_event_record(
                m["Body"],
                d.failed_events_arn,
                m["MessageId"],
                int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
                m["ReceiptHandle"],
            )
            for m in messages
        ]
        response = self.consumer.consume(records)
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        self.failures += len(failed)
        done = [m for m in messages if m["MessageId"] not in failed]
        for m in done:
            self.replayed.append(str(json.loads(m["Body"])["requestPayload"]["detail"]["eventID"]))
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=d.failed_events,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
        return len(messages)

    def _depth(self, queue: str) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=queue,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def waiting(self) -> int:
        """Messages on the failed-events queue, visible or in flight."""
        return self._depth(self._deployment.failed_events)

    def dead_letters(self) -> int:
        """Messages on the final dead-letter queue."""
        return self._depth(self._deployment.dead_letters)

    def drain(self) -> bool:
        """Poll until the queue is empty (records that failed come back after their backoff);
        whether it is (False: still not after :data:`CONSUMER_WAIT_SECONDS`)."""
        deadline = time.monotonic() + CONSUMER_WAIT_SECONDS
        while time.monotonic() < deadline:
            if self.poll():
                continue
            if not self.waiting():
                return True
            time.sleep(1.0)
        return False


@dataclass
class Received:
    """One alert document taken off an output's queue."""

    output: str
    document: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.document["id"])

    @property
    def kind(self) -> str:
        return str(self.document["kind"])


class Subscriber:
    """The outputs' consumer: reads and deletes the queues' messages while the load runs (moto's
    ReceiveMessage slows down with the length of the queue), and once more at the end."""

    def __init__(self, deployment: Deployment) -> None:
        self._sqs = client(deployment.endpoint, "sqs")
        self._queues = deployment.queues
        self._received: list[Received] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            self._receive()

    def _receive(self) -> None:
        """Every message the queues hold now (the SNS envelope's Message is the document)."""
        for output, queue in self._queues.items():
            while True:
                batch = self._sqs.receive_message(
                    QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=3600
                ).get("Messages", [])
                if not batch:
                    break
                for message in batch:
                    envelope = json.loads(message["Body"])
                    self._received.append(Received(output, json.loads(envelope["Message"])))
                self._sqs.delete_message_batch(
                    QueueUrl=queue,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(batch)
                    ],
                )

    def received(self) -> list[Received]:
        """Stop polling and return everything received."""
        self._stop.set()
        self._thread.join()
        self._receive()
        return self._received


class Environment:
    """One Lambda execution environment: its own clients, service, metrics and request count."""

    def __init__(
        self, deployment: Deployment, rules: RuleSet, faults: Faults | None, stream: int
    ) -> None:
        self.dynamodb = client(deployment.endpoint, "dynamodb")
        self.sns = client(deployment.endpoint, "sns")
        self.requests = 0
        # Registered before the faults: every HTTP request is counted, injected ones included.
        self.dynamodb.meta.events.register("before-send.dynamodb", self._count)
        if faults is not None:
            faults.attach(self.dynamodb, self.sns, stream)
        settings = deployment.settings
        self.metrics = MemoryMetrics()
        self.service = AlertService(
            rules,
            SnsPublisher(self.sns, settings),
            DynamoStateStore(self.dynamodb, settings.table_name),
            settings,
            metrics=self.metrics,
        )

    def _count(self, **_: Any) -> None:
        self.requests += 1


# --- running a scenario -------------------------------------------------------------------------


@dataclass(order=True)
class _Job:
    at: float
    seq: int
    delivery: Delivery | None = field(compare=False)
    """None: a scheduler tick."""
    attempt: int = field(default=1, compare=False)


class _Queue:
    """Lambda's asynchronous queue in virtual time: jobs come out earliest first; retries go
    back in later. ``get`` returns None once nothing is queued or running.

    A job starts only while it is less than the Lambda timeout later than the oldest running
    one: the virtual clock runs faster than the real one, and without this gate an invocation
    slowed down by moto_server would outlive its claim's lease, which no real invocation can
    (the lease is longer than the timeout), and another would take its event over.
    """

    def __init__(self, timeout: float) -> None:
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._running: Counter[float] = Counter()
        self._timeout = timeout
        self._cond = threading.Condition()

    def put(self, at: float, delivery: Delivery | None, attempt: int = 1) -> None:
        with self._cond:
            heapq.heappush(self._heap, _Job(at, next(self._seq), delivery, attempt))
            self._cond.notify_all()

    def get(self) -> _Job | None:
        with self._cond:
            while True:
                if not self._heap and not self._running:
                    self._cond.notify_all()
                    return None
                if self._heap and (
                    not self._running or self._heap[0].at < min(self._running) + self._timeout
                ):
                    job = heapq.heappop(self._heap)
                    self._running[job.at] += 1
                    return job
                self._cond.wait()

    def done(self, job: _Job) -> None:
        with self._cond:
            self._running[job.at] -= 1
            if self._running[job.at] <= 0:
                del self._running[job.at]
            self._cond.notify_all()


@dataclass
class Result:
    """What one scenario measured."""

    scenario: Scenario
    size: Size
    deliveries: int
    distinct: dict[str, int]
    """rule -> distinct events that must be accounted for."""
    received: list[Received]
    invocations: Counter[str]
    """outcome (ok, or the exception's class name) -> invocations."""
    requests_by_type: Counter[str]
    invocations_by_type: Counter[str]
    load_requests: int
    dead_lettered: list[str]
    """Event ids parked on the failed-events queue after three failed attempts."""
    replayed: list[str]
    """Event ids the consumer replayed from the failed-events queue."""
    consumer_failures: int
    """Records the consumer reported in batchItemFailures (retried after their backoff)."""
    left_parked: int
    """Messages left on the failed-events and final dead-letter queues at the end."""
    expected_brute_force: set[str]
    expected_fatigue: set[str]
    quiet_successes: set[str]
    faults: Counter[str]
    unconfirmed: set[str]
    """Delivery marks (``id@output``) whose confirmation failed :data:`CONFIRM_ATTEMPTS` times
    at the wire: that id may reach that output twice (the documented ambiguous case)."""
    state_store_errors: int
    drain_minutes: int
    unexpected: list[str]
    wall: float

    def on(self, output: str) -> list[Received]:
        return [r for r in self.received if r.output == output]

    def kinds(self, output: str = "alerts") -> Counter[str]:
        return Counter(r.kind for r in self.on(output))

    def twice(self) -> dict[str, dict[str, int]]:
        """output -> {notification id: copies} for ids received more than once. Left out:
        marked fail-open copies (their ids are shared on purpose: every attempt of an event, in
        any environment, makes the same id, for receivers to deduplicate) and ids whose
        confirmation on that output failed every attempt (:attr:`unconfirmed`: the retry
        publishes again, with the same id, as the guarantee says)."""
        result: dict[str, dict[str, int]] = {}
        for output in sorted({r.output for r in self.received}):
            ids = Counter(
                r.id
                for r in self.on(output)
                if not r.id.startswith("failopen:")
                and delivery_mark(r.id, output) not in self.unconfirmed
            )
            result[output] = {i: n for i, n in ids.items() if n > 1}
        return result

    def republished(self) -> int:
        """Extra copies of ids whose confirmation failed every attempt (allowed, same id)."""
        copies = Counter((r.output, r.id) for r in self.received)
        return sum(
            n - 1
            for (o, i), n in copies.items()
            if n > 1 and delivery_mark(i, o) in self.unconfirmed
        )

    def counted(self, output: str = "alerts") -> dict[str, int]:
        """rule -> sum of counts of every alert, summary and storm digest received, each id
        once (receivers deduplicate by id; an id received twice is :meth:`twice`'s business)."""
        sums = dict.fromkeys(COUNTED_RULES, 0)
        seen: set[str] = set()
        for r in self.on(output):
            if r.kind in COUNTED_KINDS and r.document["rule"] in sums and r.id not in seen:
                seen.add(r.id)
                sums[r.document["rule"]] += int(r.document["count"])
        return sums

    def fail_opens(self, output: str = "alerts") -> int:
        return sum(
            1
            for r in self.on(output)
            if any(str(n).startswith(FAIL_OPEN_NOTE) for n in r.document.get("notes", []))
        )

    def escalations(self, output: str) -> dict[str, Any]:
        """Expected escalations against what reached ``output``."""
        mine = self.on(output)
        escalated = {
            r.document["principal"]["name"]
            for r in mine
            if r.kind == "escalation" and r.id.startswith("escalation:brute-force:")
        }
        held = sum(held_escalations(r.document) for r in mine if r.kind == "storm")
        missing_bf = self.expected_brute_force - escalated
        fatigue = {
            r.document["event"]["event_id"]
            for r in mine
            if r.kind == "escalation" and r.id.startswith("escalation:fatigue-success:")
        }
        # A success from another address than its failures is a takeover, which stands in for
        # its MFA fatigue escalation (docs/design.md, "A sign-in from another IP").
        takeover = {
            r.document["event"]["event_id"]
            for r in mine
            if r.kind == "escalation" and r.id.startswith("escalation:takeover:")
        }
        return {
            "expected": len(self.expected_brute_force),
            "sent": len(escalated & self.expected_brute_force),
            "held": held,
            "lost": max(0, len(missing_bf) - held),
            "fatigue_expected": len(self.expected_fatigue),
            "fatigue_lost": len(self.expected_fatigue - fatigue - takeover),
            "fatigue_unexpected": len(fatigue & self.quiet_successes),
        }


_HELD = re.compile(r"(\d+) escalations")


def held_escalations(digest: dict[str, Any]) -> int:
    """Escalations a storm digest says it held (its summary: "Also held: N escalations ...",
    or its title when it held nothing else: "Alert storm: N escalations held")."""
    for text in (str(digest.get("summary", "")), str(digest.get("title", ""))):
        match = _HELD.search(text)
        if match:
            return int(match.group(1))
    return 0


def brute_force_principals(deliveries: list[Delivery], settings: Settings) -> set[str]:
    """Users with ``N`` distinct failed-MFA events within less than ``M`` minutes."""
    times: dict[str, set[tuple[float, str]]] = {}
    for d in deliveries:
        if d.rule == RULE_FAILURE:
            detail = d.envelope["detail"]
            t = datetime.fromisoformat(detail["eventTime"]).timestamp()
            times.setdefault(detail["userIdentity"]["userName"], set()).add((t, d.event_id))
    n, window = settings.brute_force.count, settings.brute_force.seconds
    found = set()
    for user, events in times.items():
        ts = sorted(t for t, _ in events)
        if any(ts[i + n - 1] - ts[i] < window for i in range(len(ts) - n + 1)):
            found.add(user)
    return found


def fatigue_successes(deliveries: list[Delivery], settings: Settings) -> tuple[set[str], set[str]]:
    """Success event ids after ``K`` failures within ``T`` minutes, and the other successes."""
    failures: dict[str, set[tuple[float, str]]] = {}
    successes: dict[str, tuple[float, str]] = {}
    for d in deliveries:
        detail = d.envelope["detail"]
        t = datetime.fromisoformat(detail["eventTime"]).timestamp()
        user = detail["userIdentity"].get("userName", "")
        if d.rule == RULE_FAILURE:
            failures.setdefault(user, set()).add((t, d.event_id))
        elif d.rule == RULE_SUCCESS:
            successes[d.event_id] = (t, user)
    k, window = settings.fatigue_success.count, settings.fatigue_success.seconds
    expected = {
        event_id
        for event_id, (t, user) in successes.items()
        if sum(1 for ft, _ in failures.get(user, ()) if t - window < ft <= t) >= k
    }
    return expected, set(successes) - expected


def classify(delivery: Delivery, metrics: MemoryMetrics, before: dict[str, int]) -> str:
    """The delivery type under load, from what the service counted while handling it."""
    if metrics.total("Duplicates") > before["Duplicates"]:
        return "duplicate"
    if metrics.total("Repeats") > before["Repeats"]:
        return "repeat"
    return {
        "failure": "alert",
        "ic-failure": "alert",
        "success": "success",
        "ic-step": "context step",
    }[delivery.kind]


def run_scenario(
    endpoint: str,
    scenario: Scenario,
    size: Size,
    progress: Callable[[str], None] = lambda _: None,
    consume: bool = True,
) -> Result:
    """Run the workload through ``size.threads`` environments with the scenario's faults.

    ``consume=False`` leaves the failed-events queue unread: the pipeline before issue 18.
    """
    started = time.perf_counter()
    rules = load_bundle()
    slug = re.sub(r"[^a-z0-9]+", "-", scenario.name.lower()).strip("-")
    deployment = deploy(endpoint, f"faults-{slug}-{size.seed}-{os.getpid()}")
    settings = deployment.settings
    deliveries = workload(size)
    faults = Faults(scenario, size.seed, deployment.topics)
    subscriber = Subscriber(deployment)
    queue = _Queue(lambda_timeout(rules))
    for d in deliveries:
        queue.put(d.at, d)
    load_end = max(d.at for d in deliveries) + sum(RETRY_DELAYS)
    minute = BASE.timestamp() + 60
    while minute <= load_end + 60:
        queue.put(minute, None)
        minute += 60

    load = _Load(deployment, rules, faults, queue, OnFailureDestination(deployment, rules))
    load.run(size.threads)
    load_requests = sum(load.requests_by_type.values())
    progress(f"{scenario.name}: load done in {time.perf_counter() - started:.0f} s")
    source, drained = load.recover(load_end, consume=consume)

    expected_fatigue, quiet_successes = fatigue_successes(deliveries, settings)
    received = subscriber.received()
    replayed = sorted(set(source.replayed))
    left_parked = source.waiting() + source.dead_letters()
    deployment.remove()
    distinct = {
        rule: len({d.event_id for d in deliveries if d.rule == rule}) for rule in COUNTED_RULES
    }
    return Result(
        scenario=scenario,
        size=size,
        deliveries=len(deliveries),
        distinct=distinct,
        received=received,
        invocations=load.invocations,
        requests_by_type=load.requests_by_type,
        invocations_by_type=load.invocations_by_type,
        load_requests=load_requests,
        dead_lettered=sorted({d.event_id for d in load.dead}),
        replayed=replayed,
        consumer_failures=source.failures,
        left_parked=left_parked,
        expected_brute_force=brute_force_principals(deliveries, settings),
        expected_fatigue=expected_fatigue,
        quiet_successes=quiet_successes,
        faults=faults.injected,
        unconfirmed={m for m, n in faults.unconfirmed.items() if n >= CONFIRM_ATTEMPTS},
        state_store_errors=sum(m.total("StateStoreErrors") for m in load.state_errors),
        drain_minutes=drained,
        unexpected=load.unexpected,
        wall=time.perf_counter() - started,
    )


class _Load:
    """The load of one run: execution environments (threads) taking deliveries and scheduler
    minutes from one queue under the scenario's faults, then the recovery after the outage."""

    def __init__(
        self,
        deployment: Deployment,
        rules: RuleSet,
        faults: Faults,
        queue: _Queue,
        destination: OnFailureDestination,
    ) -> None:
        self.deployment = deployment
        self.rules = rules
        self.faults = faults
        self.queue = queue
        self.destination = destination
        self.lock = threading.Lock()
        self.invocations: Counter[str] = Counter()
        self.requests_by_type: Counter[str] = Counter()
        self.invocations_by_type: Counter[str] = Counter()
        self.dead: list[Delivery] = []
        self.unexpected: list[str] = []
        self.state_errors: list[MemoryMetrics] = []
        self._streams = itertools.count(1)
        self._scheduler_lock = threading.Lock()
        self._scheduler: list[Environment] = []

    def run(self, threads: int) -> None:
        """Every delivery and minute of the queue, on ``threads`` environments at once."""
        workers = [threading.Thread(target=self._worker, daemon=True) for _ in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()

    def recover(self, load_end: float, *, consume: bool) -> tuple[ParkedEventSource, int]:
        """The outage ends: no more faults, the consumer reads the failed-events queue through
        its event source, the scheduler catches up. (the source, the minutes it took)"""
        self.faults.enabled = False
        clock = load_end
        operator = Environment(self.deployment, self.rules, None, 0)
        self.state_errors.append(operator.metrics)
        source = ParkedEventSource(self.deployment, self.rules, operator, lambda: clock)
        quiet = 0
        drained = 0
        # Events are parked during the load only: once the consumer has emptied the queue, it
        # stays empty, and polling it every minute after that would only cost requests.
        emptied = False
        while quiet < QUIET_MINUTES and drained < MAX_DRAIN_MINUTES:
            clock += 60
            drained += 1
            if consume and drained >= REDRIVE_AFTER_MINUTES and not emptied:
                emptied = source.drain()
            try:
                sent = operator.service.tick(datetime.fromtimestamp(clock, UTC))
            except Exception as exc:  # no faults any more: nothing should fail; next minute runs
                self.unexpected.append(
                    f"the scheduler failed at minute {drained} after the load: {exc}"
                )
                sent = []
            quiet = 0 if sent or drained <= REDRIVE_AFTER_MINUTES else quiet + 1
        if drained >= MAX_DRAIN_MINUTES:
            self.unexpected.append(
                f"the scheduler still sent notifications after {drained} minutes"
            )
        return source, drained

    def _fresh(self) -> Environment:
        env = Environment(self.deployment, self.rules, self.faults, next(self._streams))
        with self.lock:
            self.state_errors.append(env.metrics)
        return env

    def _tick(self, at: float) -> None:
        with self._scheduler_lock:  # the scheduled function has reserved concurrency 1
            if not self._scheduler:
                self._scheduler.append(self._fresh())
            try:
                self._scheduler[0].service.tick(datetime.fromtimestamp(at, UTC))
            except Crash:
                self._scheduler.clear()
            except Exception as exc:  # the next minute's run tries again
                with self.lock:
                    self.invocations[f"tick {type(exc).__name__}"] += 1

    def _worker(self) -> None:
        env = self._fresh()
        while (job := self.queue.get()) is not None:
            try:
                if job.delivery is None:
                    self._tick(job.at)
                    continue
                env = self._invoke(env, job, job.delivery)
            finally:
                self.queue.done(job)

    def _invoke(self, env: Environment, job: _Job, d: Delivery) -> Environment:
        """One invocation; the environment for the next (a new one after a crash)."""
        before = {n: env.metrics.total(n) for n in ("Duplicates", "Repeats")}
        requests = env.requests
        outcome = self._outcome(env, d, job.at)
        kind = classify(d, env.metrics, before) if outcome == "ok" else "failed attempt"
        with self.lock:
            self.invocations[outcome] += 1
            self.invocations_by_type[kind] += 1
            self.requests_by_type[kind] += env.requests - requests
        if outcome == "Crash":
            env = self._fresh()  # the execution environment died with the invocation
        if outcome != "ok":
            if job.attempt <= len(RETRY_DELAYS):
                self.queue.put(job.at + RETRY_DELAYS[job.attempt - 1], d, job.attempt + 1)
            else:
                self.destination.park(d, outcome, job.attempt)
                with self.lock:
                    self.dead.append(d)
        return env

    def _outcome(self, env: Environment, d: Delivery, at: float) -> str:
        """``ok``, ``Crash`` or the name of the exception the handler raised."""
        try:
            env.service.handle(d.rule, d.envelope, datetime.fromtimestamp(at, UTC))
        except Crash:
            return "Crash"
        except Exception as exc:
            outcome = type(exc).__name__
            # What the service raises so that Lambda retries (FailedOpenError: a marked copy
            # went out before the claim, the retry takes the deduplicated path).
            retried = ("EventInProgressError", "PublishError", "StateStoreError")
            if outcome not in (*retried, "FailedOpenError"):
                with self.lock:
                    self.unexpected.append("".join(traceback.format_exception(exc))[-2000:])
            return outcome
        return "ok"


# --- requests per delivery type, one at a time --------------------------------------------------


def requests_per_delivery_type(endpoint: str) -> dict[str, int]:
    """DynamoDB HTTP requests of each delivery type, one delivery at a time on a fresh table."""
    deployment = deploy(endpoint, f"faults-sequential-{os.getpid()}")
    env = Environment(deployment, load_bundle(), None, 0)
    t = BASE.timestamp()

    def failure(event_id: str, user: str, seconds: float) -> dict[str, Any]:
        record = _stamp(load_event("iam-consolelogin-failure-mfa-yes"), event_id, t + seconds)
        record["userIdentity"]["userName"] = user
        return envelope_of(record)

    step = _identity_center_step("seq-step", t + 30, "seq-workflow", "seq@example.com")
    success = _stamp(load_event("iam-consolelogin-success-mfa-yes"), "seq-success", t + 40)
    success["userIdentity"]["userName"] = "nobody-failed"
    repeat = failure("seq-2", "seq-user", 10)
    steps = (
        ("alert", RULE_FAILURE, failure("seq-1", "seq-user", 0)),
        ("repeat", RULE_FAILURE, repeat),
        ("duplicate", RULE_FAILURE, repeat),
        ("context step", RULE_IC_STEP, envelope_of(step)),
        ("success, no recent failures", RULE_SUCCESS, envelope_of(success)),
    )
    counts: dict[str, int] = {}
    for n, (name, rule, envelope) in enumerate(steps):
        before = env.requests
        env.service.handle(rule, envelope, datetime.fromtimestamp(t + 50 + n, UTC))
        counts[name] = env.requests - before
    deployment.remove()
    return counts


# --- the report ---------------------------------------------------------------------------------


def report(result: Result) -> None:
    s = result
    print(f"\n== {s.scenario.name}")
    distinct = sum(s.distinct.values())
    print(
        f"deliveries {s.deliveries} by {s.size.threads} environments; invocations "
        + ", ".join(f"{k} {v}" for k, v in sorted(s.invocations.items()))
        + f"; wall {s.wall:.0f} s"
    )
    if s.faults:
        print("faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(s.faults.items())))
    kinds = s.kinds()
    print(
        "notifications on alerts: "
        + ", ".join(f"{k} {kinds.get(k, 0)}" for k in KIND_ORDER)
        + f" (total {sum(kinds.values())}); on pager: {len(s.on('pager'))}"
    )
    twice = s.twice()
    print(
        "ids delivered twice: "
        + ", ".join(
            f"{o} {len(ids)} ({sum(ids.values()) - len(ids)} extra copies)"
            for o, ids in twice.items()
        )
        + f"; besides, {s.republished()} copies re-published after their confirmation failed "
        "every attempt (allowed: same id)"
    )
    counted = s.counted()
    print(
        "per-rule count sum (alerts+summaries+storm digests received on alerts) vs distinct "
        "events: "
        + ", ".join(f"{rule} {counted[rule]}/{s.distinct[rule]}" for rule in COUNTED_RULES)
        + f"; total {sum(counted.values())}/{distinct}"
        + ("  OK" if sum(counted.values()) == distinct else "  MISMATCH")
    )
    for output in ("alerts", "pager"):
        e = s.escalations(output)
        print(
            f"escalations on {output}: brute force expected {e['expected']}, sent {e['sent']}, "
            f"held in storm digests {e['held']}, LOST {e['lost']}; fatigue success expected "
            f"{e['fatigue_expected']}, LOST {e['fatigue_lost']}, "
            f"unexpected {e['fatigue_unexpected']}"
        )
    print(
        f"fail-opens (alerts with the '{FAIL_OPEN_NOTE}' note): {s.fail_opens()} on alerts, "
        f"{s.fail_opens('pager')} on pager; StateStoreErrors counted {s.state_store_errors}"
    )
    print(
        f"events parked on the failed-events queue (3 failed attempts): {len(s.dead_lettered)}; "
        f"replayed by the consumer through SQS: {len(s.replayed)} "
        f"(records failed again: {s.consumer_failures}); left on the failed-events and "
        f"dead-letter queues: {s.left_parked}"
    )
    print(
        f"DynamoDB requests per delivery under load (at the wire, retries included): "
        f"{s.load_requests / max(1, sum(s.invocations_by_type.values())):.2f}; by type: "
        + ", ".join(
            f"{k} {s.requests_by_type[k] / n:.1f} (n={n})"
            for k, n in sorted(s.invocations_by_type.items())
        )
    )
    print(f"scheduler drain: {s.drain_minutes} virtual minutes after the load")
    if s.unexpected:
        print(f"UNEXPECTED ({len(s.unexpected)}):")
        for text in s.unexpected[:3]:
            print(text)


@contextmanager
def _moto_server() -> Iterator[str]:
    from tests.conftest import running_moto_server

    with running_moto_server() as url:
        yield url


def seed_sweep(endpoint: str, scenario: Scenario, size: Size, seeds: range) -> None:
    """Run ``scenario`` once per seed; one line per seed, then how many runs broke what."""
    print(f"\n== {scenario.name}, seeds {seeds.start}-{seeds.stop - 1}")
    broken: Counter[str] = Counter()
    for seed in seeds:
        result = run_scenario(endpoint, scenario, replace(size, seed=seed))
        counted, distinct = result.counted(), result.distinct
        short = {r: f"{counted[r]}/{n}" for r, n in distinct.items() if counted[r] < n}
        excess = {r: f"{counted[r]}/{n}" for r, n in distinct.items() if counted[r] > n}
        twice = {o: ids for o, ids in result.twice().items() if ids}
        lost = {o: result.escalations(o)["lost"] for o in ("alerts", "pager")}
        problems = {
            "shortfall": short,
            "excess": excess,
            "twice": twice,
            "escalations lost": {o: n for o, n in lost.items() if n},
            "unexpected": result.unexpected,
        }
        broken.update(name for name, found in problems.items() if found)
        print(
            f"seed {seed}: "
            + ("; ".join(f"{k} {v}" for k, v in problems.items() if v) or "ok")
            + f" (parked {len(result.dead_lettered)}, re-published after failed confirmations "
            f"{result.republished()}, wall {result.wall:.0f} s)"
        )
        sys.stdout.flush()
    print(
        f"{len(seeds)} runs: "
        + (", ".join(f"{n} with {k}" for k, n in broken.items()) or "every invariant held")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--size", choices=("full", "ci"), default="full")
    parser.add_argument("--events", type=int)
    parser.add_argument("--users", type=int)
    parser.add_argument("--ips", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--seeds", help="FIRST-LAST: run each scenario once per seed and count the broken runs"
    )
    args = parser.parse_args()
    # A plain `kill` must still stop moto_server (the context manager's exit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack
    logging.getLogger("chalicelib").setLevel(logging.CRITICAL)  # failures are counted, not logged
    given = {
        name: getattr(args, name)
        for name in ("events", "users", "ips", "threads", "seed")
        if getattr(args, name) is not None
    }
    size = replace(CI_SIZE if args.size == "ci" else Size(), **given)
    print(f"os.cpu_count() = {os.cpu_count()}, Python {sys.version.split()[0]}")
    print(f"size: {size}")
    with _moto_server() as endpoint:
        probe = deploy(endpoint, f"faults-settings-{os.getpid()}")
        settings = probe.settings
        probe.remove()
        print(
            f"stage {STAGE}: outputs {', '.join(o.name for o in settings.routes)}; brute force "
            f"{settings.brute_force}, fatigue success {settings.fatigue_success}, topic rate "
            f"{settings.topic_rate}, principal rate {settings.principal_rate}"
        )
        if args.seeds:
            first, _, last = args.seeds.partition("-")
            for scenario in SCENARIOS:
                if not args.scenario or scenario.name in args.scenario:
                    seed_sweep(endpoint, scenario, size, range(int(first), int(last or first) + 1))
            return
        counts = requests_per_delivery_type(endpoint)
        print(
            "\nDynamoDB requests per delivery, sequential (one client, one delivery at a time): "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
        )
        for scenario in SCENARIOS:
            if args.scenario and scenario.name not in args.scenario:
                continue
            report(run_scenario(endpoint, scenario, size, progress=print))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
