# Glimpse3D — the two set-up commands on a fresh machine are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SAMPLE ?= glimpse3d/samples/mug.png
OUT ?= out/sample
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean chromium

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[models,dev]'
	$(PY) -m glimpse3d.splat.warmup
	touch $(STAMP)

# The Khronos glTF validator the tests run on every exported .glb (npm, pinned in package-lock.json).
NODE_TOOLS := node_modules/.package-lock.json
$(NODE_TOOLS): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm)
	npm ci --no-audit --no-fund --silent

install: $(STAMP) $(NODE_TOOLS)

# Debian's chromium drives the browser tests (Playwright cannot download its own here).
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

run: $(STAMP)
	$(VENV)/bin/glimpse3d run $(SAMPLE) -o $(OUT)
	@echo "model: $(OUT)/3d-models (see $(OUT)/report.json)"

test: $(STAMP) $(NODE_TOOLS) chromium
	$(VENV)/bin/ruff check glimpse3d tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check glimpse3d tests benchmarks
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) benchmarks/bench_rasterizer.py
	$(PY) benchmarks/bench_pipeline.py
	$(PY) benchmarks/bench_export.py

clean:
	rm -rf $(VENV) out .pytest_cache node_modules
