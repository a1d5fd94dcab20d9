# Curbside: the two commands a newcomer needs are `make demo` and `make test`.
# Everything else is a building block of those two, or of `make verify`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all venv testbed-build generate verify lint typecheck importlint test test-unit test-cluster demo bench clean

all: verify test

# One project per deployable (api, operator, agent, worker) plus the tooling at the root, all
# editable in one virtual environment, rebuilt only when a pyproject.toml changes.
PROJECTS := api operator agent worker
$(STAMP): pyproject.toml $(foreach p,$(PROJECTS),$(p)/pyproject.toml)
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11+)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(foreach p,$(PROJECTS),-e ./$(p)) -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Builds etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok and helm, and the
# tests' prometheus and promtool, from pinned Go modules into ~/.cache/curbside (once per
# machine; prints progress).
testbed-build: venv
	$(BIN)/curbside testbed build

# Everything generated comes from code (tools/curbside_gen): CRDs from the typed models in
# curbside_api (into crds/ and the chart's crds/), Grafana dashboards from the metric names the
# operator, agent and worker declare (into charts/curbside/dashboards/).
generate: venv
	$(BIN)/python -m curbside_gen

# Regenerates everything generated and fails on any difference, then lint and types.
verify: generate lint typecheck importlint
	@git diff --exit-code -- crds charts || { echo "generated files are stale: run 'make generate' and commit"; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- crds charts); \
	  if [ -n "$$untracked" ]; then echo "untracked generated files: $$untracked (run 'make generate' and git add)"; exit 1; fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

importlint: venv
	$(BIN)/lint-imports

test-unit: venv
	$(BIN)/pytest tests/unit -q

test-cluster: venv testbed-build
	$(BIN)/pytest tests/cluster -q

# The whole suite: unit tests, then cluster tests against a real control plane.
test: venv testbed-build
	$(BIN)/pytest -q

demo: venv testbed-build
	$(BIN)/python -m curbside_testbed.demo

# Curbside against plain Kubernetes on one test bed: JSON, a markdown table and PNG
# figures. The default is the quick run (1,000 cars, under 10 minutes) into docs/bench, which
# the README shows; the full run (10,000 cars, under an hour):
# make bench BENCH_ARGS="--out docs/bench/full --readme README.md".
BENCH_ARGS ?= --quick --out docs/bench --readme README.md
bench: venv testbed-build
	$(BIN)/curbside bench $(BENCH_ARGS)

clean:
	-$(BIN)/curbside testbed down --name demo
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
