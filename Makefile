# The two commands a newcomer runs: `make quickstart` and `make test`.
# Each creates .venv on first use. constraints.txt pins the versions raycv is tested
# with (torch 2.14.1 and torchvision 0.29.1, PyPI's CUDA build, which also runs on a CPU;
# timm 1.0.29). To keep a torch you already have, install with `pip install -e .`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: quickstart test test-fast lint bench clean

$(BIN)/raycv: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

quickstart: $(BIN)/raycv
	$(BIN)/raycv run experiments/quickstart.yaml --overwrite

# pytest exits 5 when it collected no test: that must fail, never pass quietly.
test: $(BIN)/raycv
	$(BIN)/pytest -q; rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests"; exit $$rc

test-fast: $(BIN)/raycv
	$(BIN)/pytest -q -m "not slow"

lint: $(BIN)/raycv
	$(BIN)/ruff check raycv tests bench && $(BIN)/ruff format --check raycv tests bench

bench: $(BIN)/raycv
	$(BIN)/python bench/executors.py

clean:
	rm -rf $(VENV) runs .pytest_cache
