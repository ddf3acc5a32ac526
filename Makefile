# Two commands that work on a fresh machine (Python >= 3.11 with venv):
#   make lab    set up and launch JupyterLab with collaboration on, on a demo notebook
#   make test   set up and run every test
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: lab test lint clean system-deps bench

# The editable install builds the JupyterLab front end (labextension/) when its sources
# are newer than the last build.
$(VENV)/.installed-%: pyproject.toml labextension/package.json $(wildcard labextension/src/*.ts)
	@command -v node >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >/dev/null; } || \
	  { echo "Node.js >= 18 builds the JupyterLab extension from source: apt-get install nodejs"; exit 1; }
	python3 -m venv $(VENV)
	$(PIP) install -q -U pip
	$(PIP) install -q -e ".[$*]"
	touch $@

# JUPYTER_CONFIG_PATH: our front end, not the Jupyter project's one, even in a .venv that
# has it too (the test extra installs it for the wire-compatibility test).
lab: $(VENV)/.installed-lab
	mkdir -p demo-run && cp -n demo/*.ipynb demo-run/ 2>/dev/null || true
	JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter-config/make-lab$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH)) \
	  $(VENV)/bin/jupyter lab --ServerApp.root_dir=demo-run --LabApp.default_url=/lab/tree/welcome.ipynb \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check jupyter_collab tests benchmarks

# Benchmarks against jupyter-collaboration 5.0.4 (docs/benchmarks.md); BENCH_ARGS=--quick for a smoke run.
bench: $(VENV)/.installed-bench
	$(PY) -m benchmarks $(BENCH_ARGS)

# Debian packages the tests use: Chromium for browser tests (never a downloaded browser) and
# redis-server for the scale-out tests (each test starts its own on a free loopback port).
SYSTEM_PACKAGES := chromium:chromium fonts-liberation redis-server:redis-server
system-deps:
	@missing=""; for entry in $(SYSTEM_PACKAGES); do cmd=$${entry%%:*}; pkg=$${entry#*:}; \
	  case "$$entry" in *:*) command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg";; *) missing="$$missing $$entry";; esac; \
	done; \
	if command -v chromium >/dev/null 2>&1 && command -v redis-server >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "missing Debian packages:$$missing (sudo apt-get install$$missing)"; exit 1; fi

# The fast unit tier first (seconds, no servers), then everything against real parts.
test: $(VENV)/.installed-test system-deps lint
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)
	$(PY) -m pytest tests --ignore=tests/unit $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) demo-run
