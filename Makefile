# Two commands that work on a fresh machine (Python >= 3.11 with venv):
#   make lab    set up and launch JupyterLab with collaboration on, on a demo notebook
#   make test   set up and run every test
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: lab test lint clean

$(VENV)/.installed-%: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q -U pip
	$(PIP) install -q -e ".[$*]"
	touch $@

lab: $(VENV)/.installed-lab
	mkdir -p demo-run && cp -n demo/*.ipynb demo-run/ 2>/dev/null || true
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=demo-run --LabApp.default_url=/lab/tree/welcome.ipynb $(LAB_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check jupyter_collab tests

test: $(VENV)/.installed-test lint
	$(PY) -m pytest tests $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) demo-run
