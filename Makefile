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
# Our fixes to the llama.cpp that llama-cpp-python vendors (patches/README.md says why).
# They are part of the cache key: a changed patch builds a new wheel.
LLAMA_PATCHES := $(sort $(wildcard patches/llama-cpp-python/*.patch))
LLAMA_KEY := $(shell (echo "$(LLAMA_CPP_VERSION) $(LLAMA_CMAKE_ARGS)"; cat $(LLAMA_PATCHES)) | cksum | cut -d' ' -f1)
WHEELS := $(HOME)/.cache/llama4-playground/wheels/$(LLAMA_KEY)
LLAMA_SRC := $(WHEELS)/src/llama_cpp_python-$(LLAMA_CPP_VERSION)
LLAMA_SDIST := $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz
# llama.cpp's own HF -> GGUF converter from the same sdist, for the parity fixture
# (tests/fixtures/llama4_pair.py), with our fix to it (patches/llama-convert/).
LLAMA_CONVERT := $(VENV)/share/llama.cpp
CONVERT_PATCHES := $(sort $(wildcard patches/llama-convert/*.patch))

.PHONY: setup setup-dev setup-hf setup-ocr run test lint bench clean

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev
setup-hf: $(VENV)/.installed-hf

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel

# Built once per flag set and patch set (8-9 minutes on 2 cores) from the sdist with our
# patches applied, then reused by every checkout. CUDA/Metal builds get the same patches.
# The key (WHEELS) already names the patches' content: a fresh checkout, whose files are
# all new, reuses the wheel.
$(WHEELS)/.built: | $(VENV)/bin/python
	rm -rf $(WHEELS)/src && mkdir -p $(WHEELS)/src
	$(PIP) download --quiet --no-deps --no-binary llama-cpp-python -d $(WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION)
	tar -xzf $(LLAMA_SDIST) -C $(WHEELS)/src
	for patch in $(abspath $(LLAMA_PATCHES)); do patch -d $(LLAMA_SRC) -p1 --forward --quiet < $$patch || exit 1; done
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --no-deps --no-cache-dir -w $(WHEELS) $(LLAMA_SRC)
	rm -rf $(WHEELS)/src
	touch $@

# --force-reinstall: an unpatched llama-cpp-python of the same version may be installed.
$(VENV)/.installed: requirements.txt $(WHEELS)/.built | $(VENV)/bin/python
	$(PIP) install --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	$(PIP) install --find-links $(WHEELS) -r requirements.txt
	touch $@

# OCR for more scripts than PyPI's English/German/Japanese: Tesseract data from the npm
# registry, sha512-checked (hub/tessdata.py). make setup-ocr OCR_LANGS="fra chi_sim"
OCR_LANGS ?= fra deu spa ita por ukr chi_sim ara
setup-ocr: $(VENV)/.installed
	$(PY) -m hub.tessdata $(OCR_LANGS)

$(VENV)/.installed-hf: requirements-hf.txt $(VENV)/.installed
	$(PIP) install -r requirements-hf.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements-hf.txt $(VENV)/.installed $(LLAMA_CONVERT)/.ready
	$(PIP) install --find-links $(WHEELS) -r requirements-dev.txt
	touch $@

$(LLAMA_CONVERT)/.ready: $(WHEELS)/.built $(CONVERT_PATCHES) | $(VENV)/bin/python
	rm -rf $(LLAMA_CONVERT) && mkdir -p $(LLAMA_CONVERT)
	tar -xzf $(LLAMA_SDIST) -C $(LLAMA_CONVERT) --strip-components=3 \
		$(addprefix llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp/,convert_hf_to_gguf.py conversion gguf-py)
	for patch in $(abspath $(CONVERT_PATCHES)); do patch -d $(LLAMA_CONVERT) -p3 --forward --quiet < $$patch || exit 1; done
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
	$(PY) bench/pull.py
	$(PY) bench/first_token.py
	$(PY) bench/ocr.py
	$(PY) bench/page_selection.py
	$(PY) bench/fidelity_images.py
	$(PY) bench/attack.py

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
