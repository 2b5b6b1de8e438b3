# make demo: install into .venv and run the main job. make test: install and run the test suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# glibc malloc tuning: PyTorch message passing on these CPUs is 2-3x faster with it (GUIDE §4)
export MALLOC_MMAP_THRESHOLD_ := 4294967296
export MALLOC_TRIM_THRESHOLD_ := 4294967296
export MALLOC_TOP_PAD_ := 1073741824

.PHONY: install demo test lint clean browser

$(BIN)/porelab: pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU build of torch first: a bare `torch` requirement would pull gigabytes of CUDA packages
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/porelab

install: $(BIN)/porelab

# the main job: a small active-learning campaign of real tiny-preset MD on the CPU (resumes if interrupted)
demo: install
	$(BIN)/porelab campaign run experiments/quickstart.yaml --dir runs/quickstart --resume

test: install browser
	$(BIN)/python -m pytest -q

# the browser test (tests/active_learning/test_ui_browser.py) drives headless Chromium: install the Debian package
# when absent (root, or sudo when there is one); without apt or rights only a note, and that test is skipped
browser:
	@test -x /usr/bin/chromium || command -v chromium >/dev/null 2>&1 || { \
	  if ! command -v apt-get >/dev/null 2>&1; then echo "note: no chromium and no apt-get; browser test skipped"; \
	  elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && \
	    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "note: no chromium, not root and no sudo; browser test skipped"; fi; \
	} || echo "note: installing chromium failed; the browser test will be skipped"

lint: install
	$(BIN)/ruff check sim surrogate active_learning tests benchmarks

clean:
	rm -rf $(VENV) runs build *.egg-info
