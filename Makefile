# `make demo`: create .venv, install llmplace, solve the default instance and print the plan.
# `make test`: create .venv, install with the test extras, run the test suite.
# `make bench`: run the smoke benchmark suite (every solver on a few instances) into benchmarks/out/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_INSTANCE := instances/device-edge-cloud.yaml
DEMO_SOLVER := dp

.PHONY: demo test test-all bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed-base
	$(BIN)/llmplace solve $(DEMO_INSTANCE) --solver $(DEMO_SOLVER)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

test-all: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: $(VENV)/.installed-test
	mkdir -p benchmarks/out
	$(BIN)/llmplace bench --suite smoke -o benchmarks/out/smoke.jsonl
	$(BIN)/llmplace report benchmarks/out/smoke.jsonl -o benchmarks/out/smoke

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
