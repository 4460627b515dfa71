# Self-documenting Makefile: `make` lists the targets. Each target calls run.py, which sets itself up.
.DEFAULT_GOAL := help
PY ?= python3

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-15s %s\n", $$1, $$2}'

env: ## create/refresh the environment (active env with torch, else .venv)
	$(PY) run.py setup

toy: ## run every numbered notebook on the toy MIMIC-shaped fixture -> outputs/<nb>/toy/
	$(PY) run.py toy

run: ## run one notebook: make run NB=01_preprocess RUN=mimic3
	$(PY) run.py run $(NB) $(RUN)

test: ## the whole test suite (what CI runs)
	$(PY) run.py test

readme-figures: ## rewrite README.md's result tables from outputs/*/toy/ (after make toy)
	$(PY) run.py readme-figures

clean: ## delete outputs/ (generated fixtures, preprocessed data, results)
	rm -rf outputs
