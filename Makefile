# The two commands a newcomer needs: `make demo` and `make test`.
# Everything else here is a step of those two.

PYTHON ?= python3
VENV ?= .venv
EQUIGUARD_CACHE ?= $(HOME)/.cache/equiguard
export EQUIGUARD_CACHE
# The cluster's node: `local` (host processes, cluster/localnode.py) or `real`
# (kubelet, containerd, runc, CNI, kube-proxy, CoreDNS; pods in containers
# from the images `make images` builds). See docs/real-node.md.
EQUIGUARD_NODE ?= local
export EQUIGUARD_NODE
export BENTOML_DO_NOT_TRACK = True

BIN := $(VENV)/bin
KUBECONFIG_PATH := $(or $(EQUIGUARD_CLUSTER_DIR),$(EQUIGUARD_CACHE)/cluster)/kubeconfig
PYTEST := KUBECONFIG=$(KUBECONFIG_PATH) $(BIN)/pytest

.PHONY: help demo test test-unit test-integration test-e2e check venv deps binaries \
        images cluster-up cluster-down test-real-node bench clean

help:
	@echo "make demo          run the main job: the local control plane and equiguard at work"
	@echo "make test          every test layer (unit, integration, e2e on the local control plane)"
	@echo "make check         ruff, mypy --strict and the import contracts"
	@echo "make cluster-up    start the local control plane (builds its binaries the first time)"
	@echo "make cluster-down  stop it"
	@echo "make images        build the operator, sidecar and model-runtime images with buildah"
	@echo "make bench         run the benchmarks"

# The virtualenv is rebuilt when pyproject.toml changes. Strict editable mode
# gives tools a plain package tree; it is refreshed on every run (3 s) so new
# modules are always importable.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=strict
	touch $@

venv: $(VENV)/.installed
	@$(BIN)/pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=strict

deps:
	@cluster/system-deps.sh

binaries:
	@cluster/build.sh

# OCI archives under $(EQUIGUARD_CACHE)/images, rebuilt when their inputs change.
images: deps
	@cluster/images.sh

cluster-up: venv binaries $(if $(filter real,$(EQUIGUARD_NODE)),images)
	@cluster/up.sh

cluster-down:
	@cluster/down.sh

check: venv
	$(BIN)/ruff check core operator sidecar tests bench cluster examples
	$(BIN)/mypy core operator sidecar
	$(BIN)/lint-imports

test-unit: venv
	$(PYTEST) tests/unit

test-integration: venv deps
	$(PYTEST) tests/integration

test-e2e: cluster-up deps
	$(PYTEST) tests/e2e

# The suite on the default cluster, then the real node's own tests on a
# cluster of their own (below); the real node's files are run only there, so
# nothing is skipped.
REAL_NODE_TESTS := tests/e2e/test_real_node.py tests/e2e/test_real_node_chart.py \
	tests/e2e/test_real_node_lifecycle.py
test: check deps cluster-up
	$(PYTEST) tests $(addprefix --ignore=,$(REAL_NODE_TESTS))
	$(MAKE) test-real-node

# The real node's own tests on a cluster of its own (state in cluster-real/,
# ports of its own, so it can run beside the default cluster): images in
# containers, Services and DNS, the safety routes, the chart, and last
# up/down/up. Stops that cluster at the end.
REAL_NODE_ENV := EQUIGUARD_NODE=real EQUIGUARD_CLUSTER_DIR=$(EQUIGUARD_CACHE)/cluster-real \
	EQUIGUARD_API_PORT=17443 EQUIGUARD_ETCD_PORT=13379
test-real-node: venv deps binaries images
	$(REAL_NODE_ENV) cluster/up.sh
	status=0; \
	$(REAL_NODE_ENV) KUBECONFIG=$(EQUIGUARD_CACHE)/cluster-real/kubeconfig \
	  EQUIGUARD_TEST_NODE_LIFECYCLE=1 $(BIN)/pytest $(REAL_NODE_TESTS) || status=$$?; \
	$(REAL_NODE_ENV) cluster/down.sh; exit $$status

# DEMO_FLAGS=--fast keeps it to about two minutes.
demo: venv deps cluster-up
	KUBECONFIG=$(KUBECONFIG_PATH) $(BIN)/python examples/demo/run.py $(DEMO_FLAGS)

bench: venv deps
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
