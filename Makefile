# Two entry points that work on a fresh machine (see README.md):
#   make quickstart   run the quickstart notebook on the local endpoint (no account, no GPU)
#   make test         install everything the tests need, then run them
# Both use one virtual environment, .venv. Each installs its own extra and keeps its own stamp, so either
# can come first: quickstart installs only `.[quickstart]` (the local endpoint, its CPU engines and what
# executes a notebook); test installs `.[dev]` (which includes it) on top.
VENV ?= .venv
PY := $(VENV)/bin/python
VENV_CREATED := $(VENV)/pyvenv.cfg
STAMP := $(VENV)/.installed
QUICKSTART_STAMP := $(VENV)/.installed-quickstart

$(VENV_CREATED):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(VENV_CREATED)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(QUICKSTART_STAMP): pyproject.toml | $(VENV_CREATED)
	$(PY) -m pip install --quiet -e '.[quickstart]'
	touch $@

.PHONY: install install-quickstart quickstart test lint binder-link
install: $(STAMP)

install-quickstart: $(QUICKSTART_STAMP)

quickstart: $(QUICKSTART_STAMP)
	cd notebooks && $(abspath $(PY)) ../scripts/notebooks.py run 01_quickstart.ipynb
	@echo "Open notebooks/build/01_quickstart.ipynb to see the outputs; the speech is in notebooks/hello.wav"

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# The mybinder.org launch link and badge for this clone's `origin` remote (standard library only: no venv).
binder-link:
	python3 scripts/binder_link.py
