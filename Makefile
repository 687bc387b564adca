# Everything a fresh machine needs is installed here: `make demo` and `make test` create .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint unit crds clean system-deps native

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Rollwise needs Python 3.11 or newer (found " + sys.version.split()[0] + ")")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The proxy's hot path compiled with mypyc (src/rollwise/platforms/local/proxy/native.py), rebuilt
# when its sources changed. Without a C compiler the proxy runs interpreted, slower; under CI
# that is a failure.
native: $(STAMP)
	@$(BIN)/python scripts/build-native.py ensure || test "$${CI:-}" != "true"

# The local platform on this machine: v1 stable, v2 promoted by analysis, v3 (30% errors)
# aborted by analysis, all under a bounded load; prints what users saw.
demo: $(STAMP) native
	$(BIN)/rollwise lint --quiet examples
	$(BIN)/python -m rollwise.demo.scenario

# System services some tests start themselves (Prometheus). Under CI a missing one is a failure;
# elsewhere those tests skip and say why.
system-deps:
	@bash scripts/system-deps.sh || test "$${CI:-}" != "true"

# The proxy's own tests run a second time on its interpreted build, which serves where no native
# build is (see `native`).
unit: $(STAMP) system-deps native
	$(BIN)/python -m pytest -q
	ROLLWISE_PROXY_PURE=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/proxy

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

test: unit lint

crds: $(STAMP)
	$(BIN)/rollwise crds

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis src/rollwise/platforms/local/proxy/_native
