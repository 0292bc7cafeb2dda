# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
# Exported: settings.py derives PUBLIC_BASE_URL (embed snippets) from it.
export PORT

.PHONY: run test test-under-load lint format lock clean bench-gateway bench-gateway-soak bench-limiter bench-usage
# ops-deploy (issue 16): the load test and its venv.
.PHONY: bench-load lock-bench

# --no-compile: Python compiles (and caches) a module when it is first imported; compiling
# every file of every package at install took 21 of the install's 56 s, mostly modules
# nothing imports (waldur-api-client alone ships ~3,000).
$(STAMP): requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile \
		--require-hashes -r requirements.lock
	@touch $@

run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py seed_demo
	@$(BIN)/python scripts/run_banner.py $(PORT)
	RUNTIME_ALLOW_PRIVATE_NETWORKS=true IN_PROCESS_JOBS=true $(BIN)/uvicorn agent_registry.asgi:application \
		--host 127.0.0.1 --port $(PORT) --no-access-log

test: $(STAMP) lint
	$(BIN)/python scripts/with_services.py $(BIN)/pytest $(PYTEST_ARGS)

# The same pytest run while scripts/cpu_hog.py keeps every CPU busy (HOG_ARGS, e.g.
# "--processes 4"): the suite must pass on a starved machine too. The hog stops with pytest.
test-under-load: $(STAMP)
	$(BIN)/python scripts/cpu_hog.py $(HOG_ARGS) -- \
		$(BIN)/python scripts/with_services.py $(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy agent_registry
	$(BIN)/lint-imports
	$(BIN)/python manage.py makemigrations --check --dry-run --verbosity 0

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The gateway benchmark (not a test, not on CI): needs local PostgreSQL and Redis on
# 127.0.0.1 and Debian's wrk. See bench/gateway/README.md; figures in docs/performance.md.
bench-gateway: $(STAMP)
	@command -v wrk >/dev/null || { echo "bench-gateway needs wrk: apt-get install -y wrk"; exit 1; }
	$(BIN)/python -m bench.gateway $(BENCH_ARGS)

bench-gateway-soak: $(STAMP)
	$(BIN)/python -m bench.gateway --soak $(BENCH_ARGS)

# The Redis limiter alone: one round trip per script against auto-pipelining (Redis only).
bench-limiter: $(STAMP)
	$(BIN)/python -m bench.gateway.limiter $(BENCH_ARGS)

# The usage benchmark (not a test): 10M records into a throwaway PostgreSQL database on
# 127.0.0.1, then aggregation and billing against a bare scan. See bench/usage/README.md.
bench-usage: $(STAMP)
	$(BIN)/python -m bench.usage $(BENCH_ARGS)

# --- ops-deploy (issue 16): the load test -------------------------------------------
# 1,000 concurrent Locust users (headless) against the production setup on this machine:
# uvicorn --workers 2, PostgreSQL, Redis, a throwaway database (agent_registry_load,
# dropped and recreated) and Redis db 10 (flushed). Not a test, not on CI; see
# bench/load/README.md, figures in docs/performance.md. Locust (and its gevent) lives in
# its own venv, .venv-bench, from the hashed requirements-bench.lock: `make test` and
# the image never install it, so the test venv stays lean.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
$(BENCH_STAMP): requirements-bench.lock
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		--require-hashes -r requirements-bench.lock
	@touch $@

bench-load: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m bench.load $(BENCH_ARGS)

# Re-resolve requirements-bench.in into its hashed lock (needs network access to PyPI).
lock-bench:
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile requirements-bench.in --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 -o requirements-bench.lock
# --- end ops-deploy

# Re-resolve requirements.in into the hashed lock (needs network access to PyPI).
lock:
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile requirements.in --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 -o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis

# --- ops-monitor: what the metrics cost on the gateway's hot path (not a test) ---------
# In-memory values against multiprocess mode, and a scrape of several workers' files.
# Figures in docs/operations.md, "Metrics".
.PHONY: bench-metrics
bench-metrics: $(STAMP)
	$(BIN)/python -m bench.metrics $(BENCH_ARGS)
