# inoculate — README.md documents these targets.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Run every demo experiment against the embedded shop and print each verdict.
demo: $(STAMP)
	$(BIN)/python -m inoculate.demo.run_experiments experiments/shop

## Production canaries under a policy: the shop, a Prometheus, background users, then a
## dry run, a pass, a kill switch, a burn-rate abort and a skip (needs Debian's prometheus).
.PHONY: demo-canary
demo-canary: $(STAMP)
	$(BIN)/python -m inoculate.demo.canary

## The shop's gameday without a terminal: prerequisites, three experiments, a hold point, notes
## and observations typed by a scripted coordinator, and the gameday report.
.PHONY: demo-gameday
demo-gameday: $(STAMP)
	$(BIN)/python -m inoculate.demo.gameday

## Network experiments: latency between gateway and catalog through our Toxiproxy-API proxy.
.PHONY: demo-network toxiproxy
demo-network: $(STAMP)
	$(BIN)/python -m inoculate.demo.run_experiments experiments/network

## Docker (README "Docker"): the shop's image built offline (debootstrap + docker import; the
## root filesystem is cached in $INOCULATE_CACHE_DIR or /var/cache/inoculate, the image is
## tagged with a hash of its inputs and reused), then the Docker demo experiments.
.PHONY: docker-image demo-docker
docker-image: $(STAMP)
	$(BIN)/python deploy/docker/build_offline_image.py

demo-docker: docker-image
	$(BIN)/python -m inoculate.demo.run_experiments experiments/docker

## Our Toxiproxy-API server in the foreground, on Toxiproxy's port (README "Network faults").
toxiproxy: $(STAMP)
	$(BIN)/python -m inoculate.toxiproxy_server --host 127.0.0.1 --port 8474

## Run the whole test suite (unit, integration, signals).
# Runbook feedback is off for the suite: tests that run the repo's demo experiments must not
# rewrite runbooks/ (the runbook tests copy experiments and runbooks to temporary folders).
# Three workers (pytest-xdist) on two cores: most integration tests wait on SLO windows and
# pauses, so the suite takes about half the time; every test owns its ledger, ports, run
# folders and Docker names, so they run side by side. TEST_WORKERS=0 runs them one by one.
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/ruff check .
	INOCULATE_RUNBOOK_FEEDBACK=off $(BIN)/python -m pytest -q -n $(TEST_WORKERS)

## The crash soak (tests/soak.py): SIGKILL/SIGINT/SIGTERM at random moments of many runs.
## SOAK_TRIALS=200 by default; SOAK_SEED=S replays a soak.
SOAK_TRIALS ?= 200
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python -m tests.soak --trials $(SOAK_TRIALS) $(if $(SOAK_SEED),--seed $(SOAK_SEED))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Benchmarks: one script per figure (README, "Benchmarks").
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf runs .inoculate .pytest_cache .hypothesis

## Kubernetes (kind): README "Kubernetes". Needs kind (v0.24+), kubectl and a Docker daemon
## holding the shop image, built offline in deploy/docker/ (inoculate/shop:<hash of its code>).
KIND            ?= kind
KUBECTL         ?= kubectl
KIND_CLUSTER    ?= inoculate
KIND_KUBECONFIG ?= $(CURDIR)/.inoculate/kind-kubeconfig
K8S_NAMESPACE   ?= inoculate-shop
SHOP_IMAGE      ?= $(shell $(BIN)/python -c 'from inoculate.demo.shop_docker.image import image_tag; print(image_tag())')

.PHONY: kind-up kind-load kind-deploy test-k8s-real kind-down

# The cluster's kubeconfig goes to its own file: ~/.kube/config is never touched.
kind-up:
	mkdir -p $(dir $(KIND_KUBECONFIG))
	$(KIND) create cluster --name $(KIND_CLUSTER) --config deploy/kind/cluster.yaml \
		--kubeconfig $(KIND_KUBECONFIG) --wait 120s

# No registry: the image goes from the local Docker daemon straight onto the kind nodes.
kind-load: $(STAMP)
	$(KIND) load docker-image $(SHOP_IMAGE) --name $(KIND_CLUSTER)

kind-deploy: $(STAMP)
	sed 's|image: inoculate/shop:latest|image: $(SHOP_IMAGE)|' deploy/kind/shop.yaml \
		| KUBECONFIG=$(KIND_KUBECONFIG) $(KUBECTL) apply -f -
	KUBECONFIG=$(KIND_KUBECONFIG) $(KUBECTL) -n $(K8S_NAMESPACE) rollout status deployment \
		--timeout=180s

# The real-cluster suite (marker real_cluster, deselected from `make test`): $KUBECONFIG when
# set, else the kind cluster's.
test-k8s-real: $(STAMP)
	@kubeconfig="$${KUBECONFIG:-$(KIND_KUBECONFIG)}"; \
	test -f "$$kubeconfig" || { echo "no kubeconfig at $$kubeconfig: set KUBECONFIG or run make kind-up kind-load kind-deploy" >&2; exit 2; }; \
	KUBECONFIG="$$kubeconfig" K8S_NAMESPACE=$(K8S_NAMESPACE) \
		$(BIN)/python -m pytest -q -m real_cluster tests/test_kubernetes_real.py

kind-down:
	$(KIND) delete cluster --name $(KIND_CLUSTER) --kubeconfig $(KIND_KUBECONFIG)
