# make demo : set up and colorize the bundled sample photos with the shipped flowers model
# make test : set up and run the test suite
# make gpu-bundle : pack wheels, photos and the launcher for a GPU machine (docs/gpu.md)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_IMAGES ?= samples
DEMO_OUTPUT ?= outputs/demo
# accelerate launch runs a CPU process with ONE thread unless OMP_NUM_THREADS is set: use every core.
export OMP_NUM_THREADS ?= $(shell nproc)

FLOWERS ?= ../shared/data/flowers/train
SPLIT ?= outputs/data
.PHONY: install browser test demo gpu-bundle clean

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

# .gpu-bundle/ (ignored, <= 60 MiB): wheels the device lacks, the training split packed as webdataset shards
# (shorter side 128 px, JPEG q65), 64 validation photos, the distillation's perceptual network (fp16) and launch.sh.
# docs/gpu.md: the device call.
gpu-bundle: install
	test -f $(SPLIT)/train.txt || $(BIN)/colorize prepare $(FLOWERS) --params pipelines/flowers/params.yaml --output-dir $(SPLIT)
	$(BIN)/python gpu/make_bundle.py --train-data $(SPLIT)/train.txt --validation-data $(SPLIT)/validation.txt --output .gpu-bundle

clean:
	rm -rf outputs .pytest_cache
