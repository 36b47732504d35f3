# Two entry points that work on a fresh machine (see README.md):
#   make quickstart   run the quickstart notebook on the local endpoint (no account, no GPU)
#   make test         install everything the tests need, then run them
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

.PHONY: install quickstart test lint
install: $(STAMP)

quickstart: $(STAMP)
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
