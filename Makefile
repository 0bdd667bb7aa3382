# make demo : set up and colorize the bundled sample photos with the shipped flowers model
# make test : set up and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_IMAGES ?= samples
DEMO_OUTPUT ?= outputs/demo
# accelerate launch runs a CPU process with ONE thread unless OMP_NUM_THREADS is set: use every core.
export OMP_NUM_THREADS ?= $(shell nproc)

.PHONY: install browser test demo clean

install: $(VENV)/.installed

# constraints.txt pins the CPU build of torch for this install; setup.cfg leaves torch open for GPU users.
$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,tracking,mlops]"
	touch $@

# The demo's browser test drives Debian's chromium + chromedriver: installed here when missing and apt-get
# can run (as root); otherwise that one test is skipped, with the reason in pytest's summary.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } || \
	    echo "could not install chromium: the browser test will be skipped" >&2; \
	  else echo "no chromium (sudo apt-get install chromium chromium-driver): the browser test will be skipped" >&2; fi; \
	fi

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: install browser
	$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

# The shipped model (models/flowers) colorizes the bundled photos (samples/, one of them 1024x1365): no
# network, no training. Writes gray | colorized | original side by side.
demo: install
	HF_HUB_OFFLINE=1 $(BIN)/colorize $(DEMO_IMAGES) -o $(DEMO_OUTPUT) --side-by-side --overwrite
	@echo "Side-by-side results (gray | colorized | original): $(DEMO_OUTPUT)/"

clean:
	rm -rf outputs .pytest_cache
