# Self-documenting Makefile: `make` lists the targets. Each target calls run.py, which sets itself up.
.DEFAULT_GOAL := help
.PHONY: help env toy run test test-fast clean study report lab
PY ?= python3

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-15s %s\n", $$1, $$2}'

env: ## create/refresh the environment (active env with torch, else .venv)
	$(PY) run.py setup

toy: ## run every numbered notebook on the toy MIMIC-shaped fixture -> outputs/<nb>/toy/
	$(PY) run.py toy

run: ## run one notebook: make run NB=01_preprocess RUN=mimic3
	$(PY) run.py run $(NB) $(RUN)

test: ## every test tier: fast, slow and notebooks (what CI runs), one pytest-xdist worker per core
	$(PY) run.py test

test-fast: ## the fast tier only (what plain `pytest` runs: units and small learning checks), on every core
	$(PY) run.py test tests -m "not slow"

readme-figures: ## rewrite README.md's result tables from outputs/*/toy/ (after make toy)
	$(PY) run.py readme-figures

clean: ## delete outputs/ (generated fixtures, preprocessed data, results)
	rm -rf outputs

PROFILE ?= toy
study: ## the whole study, skipping up-to-date runs: make study PROFILE=toy|mimic3-50|mimic3-full
	$(PY) run.py mcanb study $(PROFILE)

report: ## outputs/report/<PROFILE>/index.html from the runs there are: make report PROFILE=toy
	$(PY) run.py mcanb report $(PROFILE)

lab: ## JupyterLab on notebooks/ (127.0.0.1 only)
	$(PY) run.py mcanb lab
