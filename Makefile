# gridshift — set-up, demo, tests. Every target creates the venv it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Node.js client of the interop test (tests/test_interop_node.py); without npm the test
# is skipped. The stamp lives inside node_modules, so removing node_modules reinstalls.
INTEROP := tests/interop
INTEROP_STAMP := $(INTEROP)/node_modules/.installed

.PHONY: demo test protos lint bench bench-grpc bench-store install interop clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev,ray,tracing]'
	@# Compile the solver's kernels (insertion and the search loop) into numba's disk cache now
	@# (about 30 s), so that no solve waits for them; where numba cannot, NumPy runs instead.
	$(BIN)/python -c "from gridshift.optimizer import insertion_kernels as k; k.kernels()"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gridshift demo

$(INTEROP_STAMP): $(INTEROP)/package.json $(INTEROP)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		if npm ci --prefix $(INTEROP) --no-audit --no-fund --ignore-scripts --loglevel=error; \
		then touch $@; \
		else rm -rf $(INTEROP)/node_modules; \
			echo "npm ci failed: the Node.js interop test will be skipped" >&2; fi; \
	fi

interop: $(INTEROP_STAMP)

test: $(STAMP) $(INTEROP_STAMP)
	@sh tests/install_services.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

protos: $(STAMP)
	$(BIN)/python -m gridshift.protogen

# ruff, then the import contracts (pyproject.toml [tool.importlinter]) and the no-cycle rule,
# which tests/test_architecture.py checks on the installed layout (make test runs it too).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_architecture.py

bench: $(STAMP)
	$(BIN)/python bench/solver.py --sizes small medium large xlarge --limits 10 60

bench-grpc: $(STAMP)
	$(BIN)/python bench/grpc_latency.py

bench-store: $(STAMP)
	$(BIN)/python bench/store.py

clean:
	rm -rf $(VENV) build *.egg-info
