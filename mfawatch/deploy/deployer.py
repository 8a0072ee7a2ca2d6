"""``mfawatch deploy`` and ``mfawatch destroy``: every step of docs/deploy.md, with boto3 only.

Plan, then execute (the shape of Chalice's own deployer, ``chalice/deploy/planner.py`` and
``executor.py``): :func:`plan_deploy` and :func:`plan_destroy` decide the steps in pure code;
:class:`Deployer` performs them with the boto3 clients, the ``chalice`` command, the clock and the
``sleep`` it is given. Nothing here reads the environment: ``AWS_ENDPOINT_URL`` (moto_server in the
tests) reaches boto3 and the ``chalice`` process through the caller's session and environment.

Route (a), ``stacks``::

    check-stage -> concurrency (the account can take the stage's reservations) -> resources
    (deploy/resources.yaml, change set) -> config (the stack's outputs into the stage config,
    then the policy file) -> app (chalice deploy) -> rule-state (read-only rules'
    EventBridge state) -> invoke-config (one EventInvokeConfig per function, change set) -> selftest

Route (b), ``merged``::

    check-stage -> concurrency -> package (merge template + chalice package) -> upload
    (deployment.zip to S3, content-addressed) -> stack (mfawatch-S, change set) -> selftest

A second run changes nothing: the stacks go through change sets (an empty one is "unchanged"),
the config and policy are written only when they differ, ``chalice deploy`` runs only when the
app's fingerprint (code, config, policy, Chalice and Python versions) differs from the one
recorded after the last successful run or a recorded function is gone, and the package upload is
keyed by the zip's content.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import settings_from_env
from chalicelib.errors import MfawatchError
from chalicelib.rules import load_bundle
from mfawatch.deploy.chalice_app import ChaliceApp, ChaliceCommand, Project
from mfawatch.deploy.concurrency import preflight
from mfawatch.deploy.policy import policy_json, stage_policy
from mfawatch.deploy.rule_states import EventRules, rule_states
from mfawatch.deploy.selftest import deployed_function_names, render_report, run_selftest
from mfawatch.deploy.stacks import StackError, Stacks, aws_error, caller_account
from mfawatch.deploy.templates import (
    DEFAULT_ROUTES,
    RESOURCE_PREFIX,
    RESOURCES_TEMPLATE,
    STAGE_PARAMETER,
    StackOutputs,
    StageNames,
    check_stage_name,
    config_text,
    invoke_config_template,
    load_resources_template,
    load_stage_config,
    merge_template,
    read_config_document,
    stage_config_update,
)

ROUTE_STACKS = "stacks"
"""Route (a): the resources stack, ``chalice deploy``, the invoke-config stack."""
ROUTE_MERGED = "merged"
"""Route (b): one stack from ``chalice package --merge-template``."""
ROUTES = (ROUTE_STACKS, ROUTE_MERGED)

# CloudFormation takes a TemplateBody of at most 51,200 bytes; a larger template is read from S3
# (TemplateURL, up to 1 MB; AWS CloudFormation User Guide, cloudformation-limits). The merged
# package of 11 functions is about 60 kB.
TEMPLATE_BODY_MAX = 51_200
CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND")


class StepError(MfawatchError):
    """A deploy or destroy step failed: which step, AWS's (or the tool's) error, what to do."""

    def __init__(self, step: str, error: str, fix: str) -> None:
        self.step = step
        self.error = error
        self.fix = fix
        super().__init__(f"step {step} failed: {error}\n  what to do: {fix}")


@dataclass(frozen=True)
class Step:
    name: str
    does: str


@dataclass(frozen=True)
class Outcome:
    step: Step
    changed: bool
    detail: str


# --- the plan (pure) -------------------------------------------------------------------------


def plan_deploy(route: str, stage: str, *, selftest: bool = True) -> tuple[Step, ...]:
    """The steps of one route, in order (docs/deploy.md)."""
    names = StageNames(RESOURCE_PREFIX, stage)
    check = Step("check-stage", f"stage {stage!r}: names AWS accepts, config present")
    concurrency = Step("concurrency", "the account's unreserved concurrency takes the stage's")
    if route == ROUTE_STACKS:
        steps = [
            check,
            concurrency,
            Step("resources", f"stack {names.resources_stack} from deploy/resources.yaml"),
            Step("config", "the stack's outputs into the stage config, then the policy file"),
            Step("subscriptions", "the stage's e-mail subscriptions to its topics"),
            Step("app", f"chalice deploy --stage {stage}"),
            Step("rule-state", "rules of read-only events: ENABLED_WITH_ALL_CLOUDTRAIL_..."),
            Step("invoke-config", f"stack {RESOURCE_PREFIX}-{stage}-invoke-config"),
        ]
    elif route == ROUTE_MERGED:
        steps = [
            check,
            concurrency,
            Step("package", "merge template + chalice package --merge-template"),
            Step("upload", "deployment.zip to the bucket (keyed by its content)"),
            Step("stack", f"stack {RESOURCE_PREFIX}-{stage} from the packaged template"),
            Step("subscriptions", "the stage's e-mail subscriptions to its topics"),
        ]
    else:
        raise MfawatchError(f"route {route!r}: use one of {', '.join(ROUTES)}")
    if selftest:
        steps.append(Step("selftest", "invoke every function with the self-test event"))
    return tuple(steps)


def plan_destroy(route: str, stage: str, *, delete_data: bool = False) -> tuple[Step, ...]:
    """What deploy created, in reverse order; the table and key stay unless ``delete_data``."""
    names = StageNames(RESOURCE_PREFIX, stage)
    if route == ROUTE_STACKS:
        steps = [
            Step("invoke-config", f"delete stack {RESOURCE_PREFIX}-{stage}-invoke-config"),
            Step("app", f"chalice delete --stage {stage}"),
        ]
        if delete_data:
            steps.append(Step("resources", f"delete stack {names.resources_stack} (all data)"))
        return tuple(steps)
    if route == ROUTE_MERGED:
        if not delete_data:
            raise MfawatchError(
                f"route merged: stack {RESOURCE_PREFIX}-{stage} holds the table and the key "
                "with the functions, so deleting it deletes the data: add --delete-data"
            )
        return (Step("stack", f"delete stack {RESOURCE_PREFIX}-{stage} (all data)"),)
    raise MfawatchError(f"route {route!r}: use one of {', '.join(ROUTES)}")


def zip_content_digest(path: Path) -> str:
    """A digest of a zip's entries (names and contents), not of its bytes, which also carry
    each entry's timestamp: a rebuild of the same code keeps its upload key."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            digest.update(info.filename.encode() + b"\0")
            digest.update(archive.read(info) + b"\0")
    return digest.hexdigest()


# --- the executor ----------------------------------------------------------------------------


class Deployer:
    """Performs a plan against one account and Region, echoing progress."""

    def __init__(
        self,
        project: Project,
        stage: str,
        region: str,
        handlers: Sequence[str],
        clients: Callable[[str], Any],
        *,
        chalice: ChaliceCommand,
        echo: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        bucket: str | None = None,
        force: bool = False,
    ) -> None:
        self.project = project
        self.stage = stage
        self.region = region
        self.handlers = sorted(handlers)
        self._clients = clients
        self._chalice = chalice
        self._echo = echo
        self._clock = clock
        self._sleep = sleep
        self._bucket = bucket
        self._force = force
        self._outputs: Mapping[str, str] = {}
        self._package: Path | None = None
        self._package_key = ""
        self.names = StageNames(RESOURCE_PREFIX, stage)
        self._app = ChaliceApp(
            project,
            stage,
            self.handlers,
            chalice,
            lambda_client=lambda: clients("lambda"),
            echo=echo,
        )

    def stacks(self) -> Stacks:
        return Stacks(self._clients("cloudformation"), self._echo, self._clock, self._sleep)

    def run(self, plan: Sequence[Step], action: str = "deploy") -> list[Outcome]:
        """Each step in order; the first failure raises :class:`StepError` naming it."""
        outcomes = []
        for step in plan:
            self._echo(f"[{step.name}] {step.does}")
            method = getattr(self, f"_{action}_{step.name.replace('-', '_')}")
            try:
                changed, detail = method()
            except StepError:
                raise
            except StackError as exc:
                raise StepError(step.name, exc.error, exc.fix) from exc
            except (ClientError, BotoCoreError) as exc:
                raise StepError(
                    step.name, aws_error(exc), "see 'Before you deploy' in docs/deploy.md"
                ) from exc
            except MfawatchError as exc:
                raise StepError(step.name, str(exc), _config_fix(self.stage)) from exc
            self._echo(f"[{step.name}] {'changed' if changed else 'unchanged'}: {detail}")
            outcomes.append(Outcome(step, changed, detail))
        return outcomes

    # --- deploy steps (each returns (changed, detail)) -----------------------------------------

    def _deploy_check_stage(self) -> tuple[bool, str]:
        stage_config = load_stage_config(self.stage, self.project.config_path)
        check_stage_name(stage_config.app_name, self.stage, self.handlers)
        return False, f"{len(self.handlers)} functions, region {self.region}"

    def _deploy_concurrency(self) -> tuple[bool, str]:
        stage_config = load_stage_config(self.stage, self.project.config_path)
        return preflight(stage_config, self.handlers, self._clients("lambda"), self._echo)

    def _deploy_resources(self) -> tuple[bool, str]:
        result = self.stacks().deploy(
            self.names.resources_stack,
            RESOURCES_TEMPLATE.read_text(encoding="utf-8"),
            {STAGE_PARAMETER: self.stage},
        )
        self._outputs = result.outputs
        return result.changed, f"{len(result.outputs)} outputs"

    def _deploy_config(self) -> tuple[bool, str]:
        path = self.project.config_path
        text, config = read_config_document(path)
        account = caller_account(self._clients("sts"))
        stack = StackOutputs(self.names.resources_stack, self._outputs, account, self.region)
        update = stage_config_update(config, self.stage, stack)
        for warning in update.warnings:
            self._echo(f"  warning: {warning}")
        for change in update.changes:
            self._echo(f"  {path.name}: {change}")
        if update.changes:
            path.write_text(config_text(update.config, text), encoding="utf-8")
        wrote_policy = self._write_policy()
        changed = bool(update.changes) or wrote_policy
        return changed, f"{len(update.changes)} config change(s), policy policy-{self.stage}.json"

    def _write_policy(self) -> bool:
        """``.chalice/policy-S.json`` from the stage config, when it differs (True: written)."""
        policy_path = self.project.policy_path(self.stage)
        config = load_stage_config(self.stage, self.project.config_path)
        policy = policy_json(stage_policy(config))
        if policy_path.is_file() and policy_path.read_text(encoding="utf-8") == policy:
            return False
        policy_path.write_text(policy, encoding="utf-8")
        self._echo(f"  wrote {policy_path}")
        return True

    def _deploy_subscriptions(self) -> tuple[bool, str]:
        """Subscribe each configured address to its output's topic, unless it already is
        (pending confirmation counts: AWS lists it with ``PendingConfirmation``)."""
        stage_config = load_stage_config(self.stage, self.project.config_path)
        wanted = stage_config.subscriptions()
        if not wanted:
            return False, "none configured (mfawatch init --email)"
        settings = settings_from_env(stage_config.environment())
        sns = self._clients("sns")
        added = 0
        for output, addresses in sorted(wanted.items()):
            default = DEFAULT_ROUTES.get(output)
            topic = (self._outputs.get(default[0], "") if default else "") or settings.output(
                output
            ).topic_arn
            listed = sns.list_subscriptions_by_topic(TopicArn=topic).get("Subscriptions", [])
            present = {str(s.get("Endpoint")) for s in listed if s.get("Protocol") == "email"}
            for address in addresses:
                if address in present:
                    continue
                sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=address)
                self._echo(f"  subscribed {address} to {topic}: confirm from the e-mail AWS sent")
                added += 1
        total = sum(len(a) for a in wanted.values())
        return added > 0, f"{added} added, {total} configured"

    def _deploy_app(self) -> tuple[bool, str]:
        return self._app.deploy(force=self._force)

    def _deploy_rule_state(self) -> tuple[bool, str]:
        wanted = rule_states(load_bundle(), self.names, self.handlers)
        return EventRules(self._clients("events")).apply(wanted, self._echo)

    def _deploy_invoke_config(self) -> tuple[bool, str]:
        stage_config = load_stage_config(self.stage, self.project.config_path)
        template = invoke_config_template(
            RESOURCE_PREFIX,
            self.stage,
            self.handlers,
            consumer_concurrency=stage_config.consumer_concurrency(),
        )
        result = self.stacks().deploy(
            f"{RESOURCE_PREFIX}-{self.stage}-invoke-config", json.dumps(template, indent=1)
        )
        return result.changed, f"{len(template['Resources'])} invoke configs"

    def _deploy_package(self) -> tuple[bool, str]:
        # chalice package reads the stage's policy file although the merge template replaces
        # every role's policy: it must exist.
        self._write_policy()
        stage_config = load_stage_config(self.stage, self.project.config_path)
        template = merge_template(stage_config, self.handlers, load_resources_template())
        out = self.project.out_dir(self.stage)
        out.mkdir(parents=True, exist_ok=True)
        merge = out / "merge.json"
        merge.write_text(json.dumps(template, indent=2) + "\n", encoding="utf-8")
        package = out / "package"
        if package.exists():
            shutil.rmtree(package)
        self._chalice.package(self.stage, merge, package)
        self._package = package
        return False, f"built {package} (offline)"

    def _upload(self, path: Path, key: str) -> bool:
        """Put ``path`` at ``key`` of the bucket unless it is there (keys name the content)."""
        s3 = self._clients("s3")
        try:
            s3.head_object(Bucket=self._bucket, Key=key)
            return False
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        s3.upload_file(str(path), self._bucket, key)
        return True

    def _deploy_upload(self) -> tuple[bool, str]:
        if not self._bucket:
            raise StackError("no bucket", "pass --bucket B (an S3 bucket for the package)")
        assert self._package is not None
        digest = zip_content_digest(self._package / "deployment.zip")
        self._package_key = f"{RESOURCE_PREFIX}/{self.stage}/deployment-{digest[:32]}.zip"
        uploaded = self._upload(self._package / "deployment.zip", self._package_key)
        where = f"s3://{self._bucket}/{self._package_key}"
        return uploaded, f"uploaded {where}" if uploaded else f"{where} already there"

    def _deploy_stack(self) -> tuple[bool, str]:
        assert self._package is not None
        template = json.loads((self._package / "sam.json").read_text(encoding="utf-8"))
        packaged = with_code_uri(template, f"s3://{self._bucket}/{self._package_key}")
        body = json.dumps(packaged, indent=1)
        url = None
        if len(body.encode()) > TEMPLATE_BODY_MAX:
            path = self._package / "packaged.json"
            path.write_text(body, encoding="utf-8")
            digest = hashlib.sha256(body.encode()).hexdigest()[:32]
            key = f"{RESOURCE_PREFIX}/{self.stage}/template-{digest}.json"
            self._upload(path, key)
            url = s3_object_url(str(self._bucket), key, self.region)
        result = self.stacks().deploy(
            f"{RESOURCE_PREFIX}-{self.stage}", body, capabilities=CAPABILITIES, template_url=url
        )
        self._outputs = result.outputs
        return result.changed, f"{len(packaged.get('Resources', {}))} resources"

    def _deploy_selftest(self) -> tuple[bool, str]:
        functions = deployed_function_names(
            self.stage, self.handlers, self.project.config_path, self.project.deployed_dir
        )
        reports = run_selftest(self._clients("lambda"), functions, publish=False)
        failed = [r for r in reports if not r.ok]
        if failed:
            lines = "\n".join(render_report(failed))
            raise StackError(
                f"{len(failed)} of {len(reports)} functions failed the self-test:\n{lines}",
                "each line's hint, and the table in docs/deploy.md, Troubleshooting; "
                "`mfawatch selftest` runs this step alone",
            )
        return False, f"{len(reports)} functions answered"

    # --- destroy steps ---------------------------------------------------------------------------

    def _destroy_invoke_config(self) -> tuple[bool, str]:
        return self._delete_stack(f"{RESOURCE_PREFIX}-{self.stage}-invoke-config")

    def _destroy_app(self) -> tuple[bool, str]:
        return self._app.delete()

    def _destroy_resources(self) -> tuple[bool, str]:
        return self._delete_stack(self.names.resources_stack)

    def _destroy_stack(self) -> tuple[bool, str]:
        return self._delete_stack(f"{RESOURCE_PREFIX}-{self.stage}")

    def _delete_stack(self, name: str) -> tuple[bool, str]:
        deleted = self.stacks().delete(name)
        return deleted, f"deleted {name}" if deleted else f"no stack {name}"


def s3_object_url(bucket: str, key: str, region: str) -> str:
    """The virtual-hosted HTTPS URL CloudFormation's ``TemplateURL`` takes."""
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{bucket}.s3.{region}.{domain}/{key}"


def with_code_uri(template: Mapping[str, Any], code_uri: str) -> dict[str, Any]:
    """``chalice package``'s SAM template with every function's local ``CodeUri`` replaced by
    the uploaded package (what ``aws cloudformation package`` does)."""
    copied: dict[str, Any] = json.loads(json.dumps(template))
    for resource in copied.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = code_uri
    return copied


def _config_fix(stage: str) -> str:
    return (
        f"fix the stage in .chalice/config.json (`mfawatch init --stage {stage}` writes and "
        "checks it), then run the command again"
    )


def summary(outcomes: Sequence[Outcome], action: str = "deploy") -> str:
    """The last line of a run: what changed, or that nothing did."""
    changed = [o.step.name for o in outcomes if o.changed]
    if not changed:
        return f"{action}: no changes ({len(outcomes)} steps checked)"
    return f"{action}: changed {', '.join(changed)}"
