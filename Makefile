# Two commands do all set-up on a fresh machine with Python 3.10+:
#   make run    create .venv if missing, install, dvc repro on params.yaml
#   make test   create .venv if missing, install, lint and format check (ruff), run the test suite
VENV ?= .venv
PYTHON ?= python3
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: run test install

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	dvc repro

test: $(VENV)/.installed
	ruff check .
	ruff format --check .
	python -m pytest -q
