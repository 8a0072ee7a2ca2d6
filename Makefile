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
