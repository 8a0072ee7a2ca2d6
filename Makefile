# The two commands that do everything on a fresh machine:
#   make demo   replay the bundled scenario and print the alerts
#   make test   lint, type-check and run every test
# Both create .venv on first use (Python 3.12+ preferred, 3.11 works for everything but packaging).

VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
STAGE   ?= dev

.PHONY: demo test lint typecheck pytest rules policy package clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $$(scripts/find-python) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m chalicelib.cli replay

test: lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest -q

# Rebuild chalicelib/rules.json from rules/ (a test fails when it is stale).
rules: $(STAMP)
	$(PY) -m chalicelib.cli rules build

# Regenerate .chalice/policy-$(STAGE).json from the stage config (a test fails when it differs).
policy: $(STAMP)
	$(PY) -m chalicelib.cli policy --stage $(STAGE) --write

package: $(STAMP)
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/chalice package --stage $(STAGE) out/$(STAGE)

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache

# --- Deploy (docs/deploy.md). STAGE names a stage of .chalice/config.json; one stage per region.
# Route (a): deploy-resources, then deploy-app, then deploy-invoke-config.
# Route (b): deploy-merged BUCKET=<artifact bucket> (package-merged builds and lints it offline).
REGION     ?= $(or $(AWS_DEFAULT_REGION),us-east-1)
DEPLOY_OUT := out/deploy/$(STAGE)
CFN_LINT   := $(VENV)/bin/cfn-lint

.PHONY: deploy-resources deploy-app deploy-invoke-config package-merged deploy-merged lint-deploy

# check-stage: fail before creating anything when a name built from STAGE is too long for AWS.
deploy-resources: $(STAMP)
	$(PY) -m chalicelib.cli check-stage --stage $(STAGE)
	$(CFN_LINT) deploy/resources.yaml
	aws cloudformation deploy --region $(REGION) --stack-name mfawatch-$(STAGE)-resources \
	  --template-file deploy/resources.yaml --parameter-overrides Stage=$(STAGE) \
	  --no-fail-on-empty-changeset
	aws cloudformation describe-stacks --region $(REGION) --stack-name mfawatch-$(STAGE)-resources \
	  --query 'Stacks[0].Outputs' --output table

deploy-app: $(STAMP)
	$(PY) -m chalicelib.cli check-stage --stage $(STAGE)
	AWS_DEFAULT_REGION=$(REGION) $(VENV)/bin/chalice deploy --stage $(STAGE)

deploy-invoke-config: $(STAMP)
	$(PY) -m chalicelib.cli deploy-template invoke-config --stage $(STAGE) --output $(DEPLOY_OUT)/invoke-config.json
	$(CFN_LINT) $(DEPLOY_OUT)/invoke-config.json
	aws cloudformation deploy --region $(REGION) --stack-name mfawatch-$(STAGE)-invoke-config \
	  --template-file $(DEPLOY_OUT)/invoke-config.json --no-fail-on-empty-changeset

package-merged: $(STAMP)
	$(PY) -m chalicelib.cli deploy-template merge --stage $(STAGE) --output $(DEPLOY_OUT)/merge.json
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

# Offline: lint the resources template and both generated routes for STAGE (no AWS credentials).
lint-deploy: $(STAMP)
	$(CFN_LINT) deploy/resources.yaml
	$(PY) -m chalicelib.cli deploy-template invoke-config --stage $(STAGE) --output $(DEPLOY_OUT)/invoke-config.json
	$(CFN_LINT) $(DEPLOY_OUT)/invoke-config.json
	$(MAKE) package-merged STAGE=$(STAGE) REGION=$(REGION)

# cfn-lint the Organization templates: the member template generated for one and for several
# Regions, the central-account templates, and the Chalice package merged with the custom-bus
# template (route b). The generated files go to out/templates/.
.PHONY: lint-templates
TEMPLATES_OUT := out/templates
lint-templates: $(STAMP)
	mkdir -p $(TEMPLATES_OUT)
	$(PY) -m chalicelib.cli forwarder-template --central-bus-arn arn:aws:events:us-east-1:111122223333:event-bus/default --regions us-east-1 > $(TEMPLATES_OUT)/member-1-region.yaml
	$(PY) -m chalicelib.cli forwarder-template --central-bus-arn arn:aws:events:us-east-1:111122223333:event-bus/mfawatch-central --regions us-east-1,us-east-2,eu-north-1,ap-southeast-2,eu-west-1,eu-central-1,ap-northeast-1,ap-south-1,ca-central-1,sa-east-1,us-west-2 > $(TEMPLATES_OUT)/member-11-regions.yaml
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/chalice package --stage $(STAGE) --merge-template deploy/merge-custom-bus.yaml $(TEMPLATES_OUT)/custom-bus-$(STAGE)
	$(VENV)/bin/cfn-lint deploy/central-bus-policy.yaml deploy/central-custom-bus.yaml $(TEMPLATES_OUT)/member-1-region.yaml $(TEMPLATES_OUT)/member-11-regions.yaml $(TEMPLATES_OUT)/custom-bus-$(STAGE)/sam.yaml

# Every CloudFormation template in the repository, offline: the plain Chalice package, both
# deploy routes, the Organization templates. .ci/run runs it after the tests.
.PHONY: lint-cfn
lint-cfn: package lint-deploy lint-templates
	$(CFN_LINT) out/$(STAGE)/sam.json
