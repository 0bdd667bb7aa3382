# make demo : set up, train a short flowers model (until one ships) and colorize validation photos
# make test : set up and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FLOWERS ?= ../shared/data/flowers/train
DEMO_MODEL ?= outputs/demo-model
DEMO_STEPS ?= 1000
DEMO_IMAGES ?= 8
# accelerate launch runs a CPU process with ONE thread unless OMP_NUM_THREADS is set: use every core.
export OMP_NUM_THREADS ?= $(shell nproc)

.PHONY: install test demo clean

install: $(VENV)/.installed

# constraints.txt pins the CPU build of torch for this install; setup.cfg leaves torch open for GPU users.
$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,tracking]"
	touch $@

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

demo: install
	$(BIN)/accelerate launch --config_file accelerate_config.yaml train_colorization.py \
		--train_data_dir $(FLOWERS) --output_dir $(DEMO_MODEL) --model_preset small --resolution 32 \
		--train_batch_size 16 --learning_rate 3e-4 --lr_warmup_steps 100 --max_train_steps $(DEMO_STEPS) \
		--use_ema --checkpointing_steps 250 --checkpoints_total_limit 2 --validation_steps 250 \
		--seed 0 --resume_from_checkpoint latest
	$(BIN)/colorize $$(head -n $(DEMO_IMAGES) $(DEMO_MODEL)/validation_split.txt) \
		--model $(DEMO_MODEL) -o outputs/demo --overwrite
	@echo "Colorized validation photos: outputs/demo/   gray | colorized | truth grids: $(DEMO_MODEL)/validation/"

clean:
	rm -rf outputs .pytest_cache
