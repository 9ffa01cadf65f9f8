# The two commands a newcomer needs: `make demo` and `make test`.
# Everything else here is a step of those two.

PYTHON ?= python3
VENV ?= .venv
EQUIGUARD_CACHE ?= $(HOME)/.cache/equiguard
export EQUIGUARD_CACHE
# The cluster's node is a real one (kubelet, containerd, runc, CNI,
# kube-proxy, CoreDNS): pods run in containers from the images `make images`
# builds. See docs/real-node.md.
export BENTOML_DO_NOT_TRACK = True

BIN := $(VENV)/bin
KUBECONFIG_PATH := $(or $(EQUIGUARD_CLUSTER_DIR),$(EQUIGUARD_CACHE)/cluster)/kubeconfig
PYTEST := KUBECONFIG=$(KUBECONFIG_PATH) $(BIN)/pytest

.PHONY: help demo test test-unit test-integration test-e2e check venv deps binaries \
        images cluster-up cluster-down test-node-lifecycle bench clean

help:
	@echo "make demo          run the main job: the local control plane and equiguard at work"
	@echo "make test          every test layer (unit, integration, e2e on the local cluster)"
	@echo "make check         ruff, mypy --strict and the import contracts"
	@echo "make cluster-up    start the local cluster: control plane and a real node (builds binaries and images the first time)"
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

cluster-up: venv binaries images
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

# Every test on the cluster, then the real node's lifecycle test, which stops
# the cluster and starts it again (up, down, up), so it runs last and alone.
LIFECYCLE_TEST := tests/e2e/test_real_node_lifecycle.py
test: check deps cluster-up
	$(PYTEST) tests --ignore=$(LIFECYCLE_TEST)
	$(MAKE) test-node-lifecycle

test-node-lifecycle: venv deps binaries images
	EQUIGUARD_TEST_NODE_LIFECYCLE=1 $(PYTEST) $(LIFECYCLE_TEST)

# DEMO_FLAGS=--fast keeps it to about two minutes.
demo: venv deps cluster-up
	KUBECONFIG=$(KUBECONFIG_PATH) $(BIN)/python examples/demo/run.py $(DEMO_FLAGS)

bench: venv deps
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
