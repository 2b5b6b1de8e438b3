# make demo: install into .venv and run the main job. make test: install and run the test suite (which also builds
# the API reference, tests/test_docs.py). make docs: the API reference in build/api/.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# glibc malloc tuning: PyTorch message passing on these CPUs is 2-3x faster with it (docs/physics.md §8)
export MALLOC_MMAP_THRESHOLD_ := 4294967296
export MALLOC_TRIM_THRESHOLD_ := 4294967296
export MALLOC_TOP_PAD_ := 1073741824
# Playwright (the browser test) drives the system Chromium: never download its own browsers
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

# torch. A bare `torch` requirement pulls the CUDA build (gigabytes of nvidia packages) even on a CPU-only machine.
# CPU-only (nvidia-smi lists no GPU): the CPU build from PyTorch's CPU wheel index, or from the index pip is
# configured with when that one cannot be reached. An NVIDIA GPU: the registry's default build (CUDA 13 for
# torch 2.13) and the extra `cuda` (OpenMM's CUDA 13 platform). Overrides: GPU=yes / GPU= (the detection),
# TORCH_INDEX=<url> (TORCH_INDEX= : the configured index), EXTRAS=dev,cuda12 (a CUDA 12 torch, see docs/cluster.md).
TORCH := torch==2.13.0
comma := ,
ifeq ($(origin GPU),undefined)
GPU := $(shell nvidia-smi -L 2>/dev/null | grep -q '^GPU' && echo yes)
endif
TORCH_INDEX ?= $(if $(GPU),,https://download.pytorch.org/whl/cpu)
EXTRAS ?= dev$(if $(GPU),$(comma)cuda)
# the shell test "TORCH_INDEX is set and can be reached" (its PEP 503 page for torch answers within 15 s)
TORCH_INDEX_UP = [ -n "$(TORCH_INDEX)" ] && $(PY) -c "import sys, urllib.request as u; \
  u.urlopen(sys.argv[1].rstrip('/') + '/torch/', timeout=15)" "$(TORCH_INDEX)" 2>/dev/null

.PHONY: install torch demo test lint clean browser slurm docs

$(BIN)/porelab: pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 2>$(VENV)/install.log || { cat $(VENV)/install.log; exit 1; }
	$(BIN)/python -c "import torch" 2>/dev/null || $(MAKE) --no-print-directory torch
	@echo "pip install -e .[$(EXTRAS),docs] (pip's and the build backend's notices: $(VENV)/install.log)"
	@$(BIN)/pip install -q -e ".[$(EXTRAS),docs]" 2>>$(VENV)/install.log || { cat $(VENV)/install.log; exit 1; }
	touch $(BIN)/porelab

# torch alone, as chosen above; `make torch TORCH_PIP_FLAGS="--dry-run --report torch.json"` shows what it takes
torch:
	@echo "NVIDIA GPU: $(if $(GPU),yes,no); extras: [$(EXTRAS)]"
	@cuda=$$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9]*\).*/\1/p' | head -n 1); \
	if [ -n "$(GPU)" ] && [ -z "$(TORCH_INDEX)" ] && [ -n "$$cuda" ] && [ "$$cuda" -lt 13 ]; then \
	  echo "note: this NVIDIA driver runs CUDA $$cuda at most; torch 2.13's default build needs CUDA 13: install a"; \
	  echo "      CUDA 12 build (TORCH_INDEX=<PyTorch's cu12x index> EXTRAS=dev,cuda12) or update the driver"; \
	fi
	@if $(TORCH_INDEX_UP); then \
	  echo "$(TORCH) from $(TORCH_INDEX)"; \
	  $(BIN)/pip install -q $(TORCH_PIP_FLAGS) --index-url "$(TORCH_INDEX)" "$(TORCH)"; \
	else \
	  echo "$(TORCH) from the configured index$(if $(TORCH_INDEX), ($(TORCH_INDEX) cannot be reached))"; \
	  $(BIN)/pip install -q $(TORCH_PIP_FLAGS) "$(TORCH)"; \
	fi

install: $(BIN)/porelab

# the main job: active learning replayed on the recorded MD of data/md, then one live tiny-preset MD run of the
# model's best unmeasured design on the CPU (each step resumes if interrupted)
demo: install
	$(BIN)/porelab campaign run experiments/replay-md.yaml --out runs/demo-replay --resume
	$(BIN)/porelab design experiments/demo-design.yaml --out runs/demo-design

# pytest-xdist: one process per core (2 here); PYTEST_ARGS: a part of the suite, e.g. make test PYTEST_ARGS='-m "not slow"'
test: install browser slurm
	$(BIN)/python -m pytest -q -n 2 $(PYTEST_ARGS)

# the browser test (tests/active_learning/test_ui_browser.py) drives the system Chromium with Playwright: install the
# Debian package when absent (root, or sudo when there is one); without apt or rights only a note, and it is skipped
browser:
	@test -x /usr/bin/chromium || command -v chromium >/dev/null 2>&1 || { \
	  if ! command -v apt-get >/dev/null 2>&1; then echo "note: no chromium and no apt-get; browser test skipped"; \
	  elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && \
	    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "note: no chromium, not root and no sudo; browser test skipped"; fi; \
	} || echo "note: installing chromium failed; the browser test will be skipped"

# the Slurm tests (tests/cluster/) start a one-node Slurm cluster on localhost: install the Debian packages slurm-wlm and
# munge when absent (as root); otherwise only a note, and those tests are skipped
slurm:
	@bash tests/cluster/slurm.sh install || echo "note: the Slurm tests (tests/cluster/test_slurm.py) will be skipped"

# the API reference: pdoc's HTML of the public modules' docstrings (numpy style) in API_DIR; any warning pdoc prints
# fails it. PDOC_ALLOW_EXEC=1: importing mlflow runs `uname -p` (platform.platform() in mlflow.telemetry.schemas),
# which pdoc would block and warn about. pdoc is the extra `docs` (pyproject.toml), which `install` installs.
API_DIR ?= build/api
API_MODULES := porelab.api porelab.base porelab.sim porelab.surrogate porelab.active_learning

docs: install
	@rm -rf $(API_DIR) && mkdir -p $(API_DIR)
	@PDOC_ALLOW_EXEC=1 $(BIN)/python -m pdoc -d numpy --no-show-source -o $(API_DIR) $(API_MODULES) \
	  2> $(API_DIR)/warnings.txt || { cat $(API_DIR)/warnings.txt; echo "make docs: pdoc failed"; exit 1; }
	@if [ -s $(API_DIR)/warnings.txt ]; then cat $(API_DIR)/warnings.txt; echo "make docs: pdoc warned (above)"; \
	  exit 1; fi
	@rm -f $(API_DIR)/warnings.txt; echo "API reference: $(API_DIR)/index.html ($$(find $(API_DIR) -name '*.html' | \
	  wc -l) pages, no warnings)"

lint: install
	$(BIN)/ruff check sim surrogate active_learning tests benchmarks

clean:
	rm -rf $(VENV) runs build *.egg-info
