# Two entry points (see README): `make demo` and `make test`. Both create .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv demo test bench rom clean

$(BIN)/contra-bc: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU torch first: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(BIN)/contra-bc

venv: $(BIN)/contra-bc

demo: venv
	PATH=$(CURDIR)/$(BIN):$$PATH bash examples/demo.sh

test: venv
	$(BIN)/python -m pytest -q -ra

bench: venv
	$(BIN)/python bench/run_all

rom:
	$(MAKE) -C cartridge rom

clean:
	rm -rf $(VENV) demo-out replay-report
