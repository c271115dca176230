# `make run` sets up .venv and starts the app; `make test` sets up and runs every test.
# `make setup-hf` adds torch + transformers for --hf-path checkpoints (not needed for GGUF).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
LLAMA_CPP_VERSION := 0.3.36
# Portable CPU build: -march=native pulls in AMX kernels that crash llama.cpp on some
# Xeons (ggml-org/llama.cpp#20824). CUDA: make setup LLAMA_CMAKE_ARGS="-DGGML_CUDA=on"
# Apple Silicon: make setup LLAMA_CMAKE_ARGS="-DGGML_METAL=on"
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
else
LLAMA_CMAKE_ARGS ?=
endif
WHEELS := $(HOME)/.cache/llama4-playground/wheels/$(shell echo "$(LLAMA_CPP_VERSION) $(LLAMA_CMAKE_ARGS)" | cksum | cut -d' ' -f1)

.PHONY: setup setup-dev setup-hf run test lint bench clean

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev
setup-hf: $(VENV)/.installed-hf

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel

# Built once per flag set (8-9 minutes on 2 cores), then reused by every checkout.
$(WHEELS)/.built: | $(VENV)/bin/python
	mkdir -p $(WHEELS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --no-deps --no-cache-dir -w $(WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION)
	touch $@

$(VENV)/.installed: requirements.txt $(WHEELS)/.built | $(VENV)/bin/python
	$(PIP) install --find-links $(WHEELS) -r requirements.txt
	touch $@

$(VENV)/.installed-hf: requirements-hf.txt $(VENV)/.installed
	$(PIP) install -r requirements-hf.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements-hf.txt $(VENV)/.installed
	$(PIP) install --find-links $(WHEELS) -r requirements-dev.txt
	touch $@

run: setup
	$(PY) launch.py --open $(ARGS)

test: setup-dev
	$(PY) tests/browser_setup.py
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(PY) bench/engine_overhead.py
	$(PY) bench/store_scale.py
	$(PY) bench/ingest.py
	$(PY) bench/prefix_reuse.py
	$(PY) bench/image_reuse.py
	$(PY) bench/compare.py
	$(PY) bench/first_token.py

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
