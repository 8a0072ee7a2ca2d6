# The two commands that do everything on a fresh machine:
#   make demo   replay the bundled scenario and print the alerts
#   make test   lint, type-check and run every test (every CloudFormation template is cfn-linted
#               once, by the integration tests)
#   make quick  the unit tier only (pure code: no moto, no subprocess) without the simulation's
#               enumerations and the slowest tests, on two workers, while iterating
# Both create .venv on first use (Python 3.12+ preferred, 3.11 works for everything but packaging).

VENV    := .venv
PY      := $(VENV)/bin/python
MFAWATCH := $(VENV)/bin/mfawatch
STAMP   := $(VENV)/.installed
# What the Lambda runtime provides (awslambdaric, boto3), apart from the venv: tests/runtime/.
LAMBDA_RUNTIME := $(VENV)/lambda-runtime
LAMBDA_STAMP   := $(LAMBDA_RUNTIME)/.installed
STAGE   ?= dev

.PHONY: demo test quick lint typecheck suppressions pytest rules policy package clean

# The project itself is installed editable, which puts the `mfawatch` command in .venv/bin.
# Installs come from the locks (every package pinned with its hashes), never from the top-level
# pins: `make lock` recompiles them after a change to requirements*.txt. The version is read from
# chalicelib/__init__.py at install time, so a version change reinstalls too.
$(STAMP): requirements-dev.lock pyproject.toml chalicelib/__init__.py
	test -x $(PY) || $$(scripts/find-python) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(LAMBDA_STAMP): tests/runtime/requirements.lock $(STAMP)
	rm -rf $(LAMBDA_RUNTIME)
	$(PY) -m pip install --quiet --require-hashes --target $(LAMBDA_RUNTIME) -r tests/runtime/requirements.lock
	touch $(LAMBDA_STAMP)

# Recompile both locks from the top-level pins (uv, pinned in requirements-dev.txt). --universal
# keeps environment markers, so one lock serves Python 3.11 and 3.12+ on any platform.
UV_COMPILE := $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock"
.PHONY: lock
lock: $(STAMP)
	$(UV_COMPILE) requirements-dev.txt -o requirements-dev.lock
	$(UV_COMPILE) tests/runtime/requirements.txt -o tests/runtime/requirements.lock

demo: $(STAMP)
	$(MFAWATCH) replay

# The checks run beside the tests (-j): on two cores they take little more than the tests alone.
# -O prints each one's output in one piece when it ends.
test: $(STAMP) $(LAMBDA_STAMP)
	@$(MAKE) --no-print-directory -j 4 -O lint typecheck suppressions pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Every suppression valid and unexpired (exit 1 otherwise; warns 14 days ahead): CI runs it
# through `make test`, so an expired suppression fails the build on its date.
suppressions: $(STAMP)
	$(MFAWATCH) suppressions check

# The tests write bytecode caches whatever PYTHONDONTWRITEBYTECODE says (empty: Python writes
# them): without them every worker compiles every module, and pytest rewrites every test module's
# asserts, again on every run (half of the unit tier's collection time). The runtime tier's
# functions still run without (tests/support/lambdaric.py), as Lambda does.
KEEP_BYTECODE := PYTHONDONTWRITEBYTECODE=

# One worker per core (pytest-xdist). A test module stays on one worker, so its module fixtures (a
# packaged zip, a moto server) are built once, except modules marked `spread`; the slow modules
# are sent first so the workers finish together (tests/conftest.py).
pytest: $(STAMP) $(LAMBDA_STAMP)
	$(KEEP_BYTECODE) $(VENV)/bin/pytest -q -n auto --dist loadgroup --no-loadscope-reorder

# The unit tier on two workers, with a tenth of the property-test examples (tests/conftest.py) and
# without the simulation's enumerations of fault points, orders and fault pairs (marked
# `enumeration`) and the few unit tests that take a second or more (marked `slow`): make test runs
# them.
quick: $(STAMP)
	MFAWATCH_QUICK=1 $(KEEP_BYTECODE) $(VENV)/bin/pytest -q -n 2 -m "not enumeration and not slow" tests/unit

# Rebuild chalicelib/rules.json from rules/ (a test fails when it is stale).
rules: $(STAMP)
	$(MFAWATCH) rules build

# Regenerate .chalice/policy-$(STAGE).json from the stage config (a test fails when it differs).
policy: $(STAMP)
	$(MFAWATCH) policy --stage $(STAGE) --write

package: $(STAMP)
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/chalice package --stage $(STAGE) out/$(STAGE)

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache

# --- Deploy (docs/deploy.md). STAGE names a stage of .chalice/config.json; one stage per region.
# One command, boto3 and Chalice only (no AWS CLI), idempotent: make deploy STAGE=S REGION=R
#   (BUCKET=B: route (b), one stack; NO_SELFTEST=1 skips the last step). mfawatch init writes
#   the stage first; make destroy removes it again (DELETE_DATA=1 also the table and key).
# The step-by-step targets below need the AWS CLI:
# Route (a): deploy-resources, then deploy-config, then deploy-app, then deploy-invoke-config.
# Route (b): deploy-merged BUCKET=<artifact bucket> (package-merged builds and lints it offline).
REGION     ?= $(or $(AWS_DEFAULT_REGION),us-east-1)
DEPLOY_OUT := out/deploy/$(STAGE)
CFN_LINT   := $(VENV)/bin/cfn-lint

.PHONY: deploy destroy deploy-resources deploy-config deploy-app deploy-invoke-config \
	package-merged deploy-merged

deploy: $(STAMP)
	$(MFAWATCH) deploy --stage $(STAGE) --region $(REGION) \
	  $(if $(BUCKET),--route merged --bucket $(BUCKET)) $(if $(NO_SELFTEST),--no-selftest)

destroy: $(STAMP)
	$(MFAWATCH) destroy --stage $(STAGE) --region $(REGION) \
	  $(if $(BUCKET),--route merged) $(if $(DELETE_DATA),--delete-data)

# check-stage: fail before creating anything when a name built from STAGE is too long for AWS.
deploy-resources: $(STAMP)
	$(MFAWATCH) check-stage --stage $(STAGE)
	$(CFN_LINT) deploy/resources.yaml
	aws cloudformation deploy --region $(REGION) --stack-name mfawatch-$(STAGE)-resources \
	  --template-file deploy/resources.yaml --parameter-overrides Stage=$(STAGE) \
	  --no-fail-on-empty-changeset
	aws cloudformation describe-stacks --region $(REGION) --stack-name mfawatch-$(STAGE)-resources \
	  --query 'Stacks[0].Outputs' --output table

# The resources stack's outputs into .chalice/config.json (prints old -> new), then the policy.
deploy-config: $(STAMP)
	$(MFAWATCH) deploy-config --stage $(STAGE) --region $(REGION) --write
	$(MFAWATCH) policy --stage $(STAGE) --write

deploy-app: $(STAMP)
	$(MFAWATCH) check-stage --stage $(STAGE)
	AWS_DEFAULT_REGION=$(REGION) $(VENV)/bin/chalice deploy --stage $(STAGE)

deploy-invoke-config: $(STAMP)
	$(MFAWATCH) deploy-template invoke-config --stage $(STAGE) --output $(DEPLOY_OUT)/invoke-config.json
	$(CFN_LINT) $(DEPLOY_OUT)/invoke-config.json
	aws cloudformation deploy --region $(REGION) --stack-name mfawatch-$(STAGE)-invoke-config \
	  --template-file $(DEPLOY_OUT)/invoke-config.json --no-fail-on-empty-changeset

package-merged: $(STAMP)
	$(MFAWATCH) deploy-template merge --stage $(STAGE) --output $(DEPLOY_OUT)/merge.json
	rm -rf $(DEPLOY_OUT)/package
	AWS_DEFAULT_REGION=$(REGION) $(VENV)/bin/chalice package --stage $(STAGE) \
	  --merge-template $(DEPLOY_OUT)/merge.json $(DEPLOY_OUT)/package
	$(CFN_LINT) $(DEPLOY_OUT)/package/sam.json

deploy-merged: package-merged
	test -n "$(BUCKET)" || { echo "set BUCKET=<S3 bucket for the deployment package>"; exit 2; }
	aws cloudformation package --region $(REGION) --template-file $(DEPLOY_OUT)/package/sam.json \
	  --s3-bucket $(BUCKET) --output-template-file $(DEPLOY_OUT)/package/packaged.yaml
	aws cloudformation deploy --region $(REGION) --stack-name mfawatch-$(STAGE) \
	  --template-file $(DEPLOY_OUT)/package/packaged.yaml \
	  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset

# After either route: invoke every deployed function with the self-test event (docs/deploy.md).
# PUBLISH=1 also sends one LOW "mfawatch self-test" notification to every output.
.PHONY: selftest
selftest: $(STAMP)
	$(MFAWATCH) selftest --stage $(STAGE) --region $(REGION) $(if $(PUBLISH),--publish)

# Regenerate docs/runbooks/ from rules/*.yaml (a unit test fails when they are stale).
.PHONY: docs
docs: $(STAMP)
	$(PY) -m mfawatch.rules.runbooks
