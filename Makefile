# Set-up, run, test and benchmark Mesh Doctor. Every target creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE ?= examples/503-upstream-down
DEBIAN_PACKAGES := openssl tcpdump curl chromium iproute2

.PHONY: run test samples clean deb-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml setup.py
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mesh-doctor $(SAMPLE)

deb-packages:
	@missing=""; for package in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

test: $(STAMP) deb-packages
	$(BIN)/pytest -q

samples: $(STAMP)
	$(BIN)/python -m doctor.lab.samples examples

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Access-log summary benchmark: mesh-doctor logs against mawk and jq (docs/benchmarks.md).
BENCH_LOGS_PACKAGES := mawk jq time

.PHONY: bench bench-logs bench-logs-packages
bench: bench-logs

bench-logs-packages:
	@missing=""; for package in $(BENCH_LOGS_PACKAGES); do \
	  dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

bench-logs: $(STAMP) bench-logs-packages
	$(BIN)/python benchmarks/bench_logs.py

# Inject every mesh lab fault into real Envoy sidecars, scan each capture, and
# print fault -> top cause -> right/wrong; the result goes to docs/accuracy.md.
.PHONY: accuracy
accuracy: $(STAMP) deb-packages
	$(BIN)/python -m doctor.lab.accuracy --markdown docs/accuracy.md

# Live probes: the replay API server with the recorded sidecar OOM incident on
# 127.0.0.1 for demos (Ctrl-C stops it), and the parallel-probe benchmark
# against it with 200 ms added per answer (docs/benchmarks.md).
.PHONY: replay bench-live
replay: $(STAMP)
	$(BIN)/python -m tests.replay --kubeconfig .replay-kubeconfig

bench: bench-live
bench-live: $(STAMP)
	$(BIN)/python benchmarks/live_probes.py

# Reproduce a mesh lab fault (picked in a list, or random and hidden) and open its diagnosis.
.PHONY: practice
practice: $(STAMP) deb-packages
	$(BIN)/mesh-doctor lab practice
