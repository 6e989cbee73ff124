# lightsail-k3s: `make up` deploys a stack, `make test` runs the suite; `make help` lists the rest.
STACK ?= dev
VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: help up preview destroy plan restore test mutants e2e lint clean

# The virtualenv is rebuilt whenever a requirements file changes. --no-compile: byte-compiling every
# module of the provider SDKs is most of an install (pulumi-aws-native alone, 4,400 files: 123 s with,
# 18 s without, measured here); Python compiles the modules a run imports when it first imports them.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile -r requirements-dev.txt
	touch $@

help:
	@echo "make up       deploy STACK (default dev) with the Pulumi CLI; checks the CLI, AWS credentials, backend, adminCidrs"
	@echo "make preview  pulumi preview of STACK, after the same checks"
	@echo "make destroy  pulumi destroy of STACK, after the same checks (protected resources refuse; see README Teardown)"
	@echo "make plan     offline plan of STACK on the mock engine, no CLI or credentials (SET=, SECRET=, BASE=)"
	@echo "make restore  list STACK's etcd snapshots; SNAPSHOT=<name|latest> restores one"
	@echo "make test     the whole suite (what CI runs)"
	@echo "make lint     ruff, the type checker (basedpyright) and shellcheck; make test runs them too"
	@echo "make mutants  the documented mutation run (tools/mutants.py): each regression must fail the suite"
	@echo "make e2e      the end-to-end suite on real AWS (billed); skips without the CLI or credentials"
	@echo "make clean    remove the virtualenv and caches"

up preview destroy: $(VENV)/.installed
	STACK=$(STACK) bin/up.sh $@

# SET and SECRET reach tools/plan.py through the environment, unexpanded and unsplit, so JSON
# with spaces and quotes arrives as typed; tools/plan.py splits the items itself.
# make plan BASE=<git ref> adds what changed against the plan at that ref (tools/plandiff.py).
plan: export PLAN_SET = $(value SET)
plan: export PLAN_SECRET = $(value SECRET)
plan: $(VENV)/.installed
	$(PYTHON) -m tools.plan --stack '$(STACK)'
	$(if $(BASE),$(PYTHON) -m tools.plandiff --stack '$(STACK)' --base '$(BASE)')

# make restore STACK=prod lists the bucket's etcd snapshots; add SNAPSHOT=<name|latest> to restore one.
restore:
	bin/restore.sh $(STACK) $(SNAPSHOT)

test: $(VENV)/.installed
	$(PYTHON) -m pytest

# Ten realistic regressions, one at a time in a scratch copy; every one must fail its tests (~2 min).
mutants: $(VENV)/.installed
	$(PYTHON) -m tools.mutants

# Real AWS through the Automation API (billed, minutes): skips, naming what is missing, without the
# Pulumi CLI or AWS credentials. Never part of `make test`.
e2e: $(VENV)/.installed
	$(PYTHON) -m pytest tests/e2e

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/basedpyright
	$(VENV)/bin/shellcheck components/remote/*.sh bin/*.sh .ci/run

clean:
	rm -rf $(VENV) .pytest_cache
