# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The exact versions CI tests with (setup.cfg keeps ranges, so an install elsewhere, e.g. on
# Colab, keeps what is already there when it fits).
CONSTRAINTS := .ci/constraints.txt
DATA_DIR ?= out/data
DEMO_DIR ?= out/demo
PYTEST_ARGS ?=

REPRODUCE_DIR ?= out/reproduce

.PHONY: demo reproduce test test-slow lint bench espeak clean

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e ".[dev,preprocess,torch]"
	touch $(STAMP)

espeak:
	@if command -v espeak-ng >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ]; then \
		echo "Installing espeak-ng (Debian package)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; \
	else \
		echo "espeak-ng is missing. Install it with:  sudo apt-get install -y espeak-ng"; exit 1; \
	fi

demo: $(STAMP) espeak
	$(PY) -m experiments.demo --data_dir $(DATA_DIR) --workdir $(DEMO_DIR)

# The recipe larger: 2x corpus, 2,000 / 1,500 / 150 steps, every stage-3 method (resumable: run
# it again after an interruption).
reproduce: $(STAMP) espeak
	$(PY) -m experiments.demo --preset reproduce --data_dir $(REPRODUCE_DIR)/data \
		--workdir $(REPRODUCE_DIR)

test: $(STAMP) espeak
	$(PY) -m ruff check lipjax configs data_builders experiments tests
	$(PY) -m pytest -n 2 --dist loadgroup -q $(PYTEST_ARGS)

# Long tests (the tiny recipe end to end, kill -9 resume, several processes): minutes each.
# CI (.ci/run) runs them after `make test`.
test-slow: $(STAMP) espeak
	$(PY) -m pytest -n 2 --dist loadgroup -q -m slow $(PYTEST_ARGS)

bench: $(STAMP) espeak
	$(PY) -m experiments.bench_data
	$(PY) -m experiments.bench_train

clean:
	rm -rf out
