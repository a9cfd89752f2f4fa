# The README's two commands: `make demo` and `make test`. Both set everything up first.
#
# Set-up: a virtual environment in .venv that also sees the system's site-packages, so a torch
# you already have is kept. If none is importable, torch==2.13.0 is installed first (on the
# reference machine pip takes that CPU build from local disk instead of a multi-GB CUDA build).
# Point VENV at another environment to install there instead.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
PIP := $(PY) -m pip install --disable-pip-version-check -q
PYTEST_ARGS ?= -n 2
# one torch thread per test worker: two workers with two threads each oversubscribe 2 cores
TEST_ENV ?= OMP_NUM_THREADS=1

.PHONY: setup demo test lint bench clean

# bytecode, as installing a wheel writes it: where PYTHONDONTWRITEBYTECODE is set (the
# reference machine) every start would otherwise compile our modules again (~35 ms)
setup: $(VENV)/.soundformers-installed
	$(PY) -m compileall -q src >/dev/null

$(VENV)/.soundformers-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) "$(TORCH_PIN)"
	$(PIP) -e ".[test,models]"
	touch $@

demo: setup
	$(PY) -m soundformers transcribe examples/hello.flac --format srt --verbose

lint: setup
	$(PY) -m ruff check src tests benchmarks

test: lint
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PIP) -e ".[bench]"
	$(PY) benchmarks/import_time.py
	$(PY) benchmarks/decode_resample.py
	$(PY) benchmarks/features.py
	$(PY) benchmarks/metrics.py
	$(PY) benchmarks/audio_datasets.py
	$(PY) benchmarks/longform.py
	$(PY) benchmarks/load_memory.py
	$(PY) benchmarks/asr_memory.py

clean:
	rm -rf $(VENV) .pytest_cache build dist
