# lightsail-k3s: `make up` deploys a stack, `make test` runs the suite; `make help` lists the rest.
STACK ?= dev
VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: help up preview destroy plan restore health test mutants e2e lint clean
# A bare `make` says what to do rather than building the virtualenv.
.DEFAULT_GOAL := help

# The virtualenv is rebuilt whenever a requirements file changes. pip only bootstraps uv, which
# installs the requirements: with pip, a fresh clone spent 56 s here installing them from pip's
# warm cache; uv took 5 s with an empty cache (measured on this project's 2-core machine).
# --system-certs: uv trusts the system's certificate store, as pip does, so a TLS-inspecting proxy
# that pip gets through does not stop uv. Like pip --no-compile, uv skips byte-compiling the
# provider SDKs (pulumi-aws-native alone is 4,400 files); Python compiles what a run imports.
UV := uv==0.13.9
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check '$(UV)'
	$(VENV)/bin/uv pip install --quiet --system-certs --python $(PYTHON) -r requirements-dev.txt
	touch $@

help:
	@echo "make up       deploy STACK (default dev) with the Pulumi CLI; checks the CLI, AWS credentials, backend, adminCidrs"
	@echo "make preview  pulumi preview of STACK, after the same checks"
	@echo "make destroy  pulumi destroy of STACK, after the same checks (protected resources refuse; see docs/lifecycle.md, Teardown)"
	@echo "make plan     offline plan of STACK on the mock engine, no CLI or credentials (SET=, SECRET=, CONFIG_FILE=, BASE=)"
	@echo "make restore  list STACK's etcd snapshots; SNAPSHOT=<name|latest> restores one"
	@echo "make health   what on STACK's cluster needs a person, each with its fix (docs/operations.md)"
	@echo "make test     the whole suite (what CI runs)"
	@echo "make lint     ruff, the type checker (basedpyright) and shellcheck; make test runs them too"
	@echo "make mutants  the documented mutation run (tools/mutants.py): each regression must fail the suite"
	@echo "make e2e      the end-to-end suite on real AWS (billed); skips without the CLI or credentials"
	@echo "make clean    remove the virtualenv and caches"

# bin/up.sh checks the stack file, the CLI and AWS credentials first, then builds the virtualenv
# with this Makefile (VENV_TARGET), so a workstation without the CLI hears so at once.
up preview destroy:
	STACK=$(STACK) VENV_TARGET=$(VENV)/.installed bin/up.sh $@

# SET and SECRET reach tools/plan.py through the environment, unexpanded and unsplit, so JSON
# with spaces and quotes arrives as typed; tools/plan.py splits the items itself.
# make plan CONFIG_FILE=<path> reads the stack's config from that file, as `pulumi --config-file` does.
# make plan BASE=<git ref> adds what changed against the plan at that ref (tools/plandiff.py).
plan: export PLAN_SET = $(value SET)
plan: export PLAN_SECRET = $(value SECRET)
plan: $(VENV)/.installed
	$(PYTHON) -m tools.plan --stack '$(STACK)' $(if $(CONFIG_FILE),--config-file '$(CONFIG_FILE)')
	$(if $(BASE),$(PYTHON) -m tools.plandiff --stack '$(STACK)' --base '$(BASE)')

# make restore STACK=prod lists the bucket's etcd snapshots; add SNAPSHOT=<name|latest> to restore one.
restore:
	bin/restore.sh $(STACK) $(SNAPSHOT)

# The daily report (tools/health.py; the health workflow runs it too): certificates, snapshots,
# reboots, k3s releases, burst capacity and alarms, drift. Exit 1: findings; 2: a check failed.
health: $(VENV)/.installed
	$(PYTHON) -m tools.health --stack '$(STACK)'

# One pytest worker per core (pytest-xdist); worksteal rebalances when a slow file (the type check)
# lands on one worker. A test that writes a file in the project names it for itself alone.
# The suite writes bytecode caches (git ignores them) even where PYTHONDONTWRITEBYTECODE is set, as
# on this project's machine: without them every worker, and every `python -m tools.plan` a test
# starts, compiled the provider SDKs from source again, and pytest rewrote each test module's
# asserts again (a fresh clone's suite: 131 s of CPU with the variable set, 102 s without).
test: $(VENV)/.installed
	PYTHONDONTWRITEBYTECODE= $(PYTHON) -m pytest -n auto --dist worksteal

# The documented regressions, one at a time in a scratch copy; every one must fail its tests (minutes).
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
