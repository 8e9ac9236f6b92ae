# Entry points. Every target runs `setup` first; setup is idempotent (stamp files).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# checkov pins packaging<24 and pytest needs >=24: infrastructure checks get their own venv.
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed
# make bench's own tools (DuckDB), in .venv beside the rest; the tests never need them.
BENCH_STAMP := $(VENV)/.bench-installed

# The browser tests use Debian's Chromium and its driver (never a browser a tool downloads).
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
BROWSER_PACKAGES := chromium chromium-driver

.PHONY: setup test lint unit demo bench clean browser docs-screenshot

setup: $(PY_STAMP) $(NODE_STAMP) $(INFRA_STAMP) browser

# As root (CI), installs the packages when missing; otherwise says how, and the browser tests fail
# with the same instruction until they are there.
browser:
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(BROWSER_PACKAGES); \
	else \
		echo "warning: $(CHROMIUM) or $(CHROMEDRIVER) is missing; the browser tests need them:" \
			"sudo apt-get install $(BROWSER_PACKAGES)" >&2; \
	fi

$(PY_STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(INFRA_STAMP): requirements-infra.txt
	test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt
	touch $@

$(BENCH_STAMP): requirements-bench.txt $(PY_STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports --no-cache

test: lint
	INFRA_TOOLS=$(INFRA_VENV)/bin REQUIRE_INFRA_TOOLS=1 $(PY) -m pytest -n 2

# The fast tier alone: pure logic, no server (see tests/conftest.py for the tiers).
unit: setup
	$(PY) -m pytest -n 2 -m unit

demo: setup
	$(PY) -m devtools.demo

# The README's picture of the HTML report, taken by the browser test from the bundled sample.
docs-screenshot: setup
	MIA_DOCS_SCREENSHOT=1 $(PY) -m pytest -p no:cacheprovider tests/browser -k sample

bench: setup $(BENCH_STAMP)
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) $(INFRA_VENV) node_modules out .pytest_cache .mypy_cache .ruff_cache .hypothesis
