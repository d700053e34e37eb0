# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.13.0

.PHONY: demo test install lint format bench bench-omniglot clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch is installed first, pinned, so the [train] extra's `torch>=2.2` is already met
# by the CPU wheel and pip never reaches for a CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[train,dev,serve,postgres,ann]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/facegate demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

format: $(STAMP)
	$(BIN)/ruff format src tests bench scripts
	$(BIN)/ruff check --fix src tests bench scripts

# Benchmarks print the tables of the README; embeddings are cached under runs/cache.
bench: $(STAMP)
	$(BIN)/python bench/lfw_accuracy.py --cache runs/cache --cost-images 100
	$(BIN)/python bench/tta_search.py --cache runs/cache
	$(BIN)/python bench/decisions.py --cache runs/cache
	$(BIN)/python bench/stages.py --images 200
	$(BIN)/python bench/detectors.py --images 60
	$(BIN)/python bench/speed.py --images 300
	$(BIN)/python -m pip install --quiet --no-deps face_recognition
	$(BIN)/python bench/vs_face_recognition.py --accuracy
	$(BIN)/python bench/service.py
	$(BIN)/python bench/evaluate_report.py --out runs/bench --cache runs/cache
	$(BIN)/python bench/nn4small2_speed.py
	$(BIN)/python bench/orl_finetune.py

# About an hour: three one-shot methods trained 5 minutes each, the best one 30 minutes; each evaluated.
OMNIGLOT = --data ../shared/data/omniglot --out runs/omniglot --threads 2
bench-omniglot: $(STAMP)
	$(BIN)/python bench/omniglot.py $(OMNIGLOT) --methods siamese-bce,triplet,best --budget 300 --suffix=-5min
	$(BIN)/python bench/omniglot.py $(OMNIGLOT) --methods best --budget 1800 --suffix=-30min
	$(BIN)/python bench/omniglot.py $(OMNIGLOT) --methods best --suffix=-30min --reuse --tta

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
