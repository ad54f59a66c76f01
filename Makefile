# Two commands do everything on a fresh machine: `make demo` and `make test` (see README.md). For developers:
# `make test-fast` (the library's unit tests, one to two minutes) and `make lint` (layers and style).
PYTHON_ENV := .venv/bin/python
STAMP := .venv/.setup-done
FAST := not slow and not multiprocess and not e2e

.PHONY: setup demo test test-fast lint dataset-infos sample flags-doc

$(STAMP): pyproject.toml scripts/setup.sh scripts/prepare_models.py
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PYTHON_ENV) scripts/run_benchmark.py --config experiments/demo.yaml $(DEMO_ARGS)

test: $(STAMP)
	$(PYTHON_ENV) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PYTHON_ENV) -m pytest -m "$(FAST)" $(PYTEST_ARGS)

lint: $(STAMP)
	.venv/bin/lint-imports
	.venv/bin/ruff check .

dataset-infos: $(STAMP)
	$(PYTHON_ENV) scripts/make_dataset_infos.py

sample: $(STAMP)
	$(PYTHON_ENV) scripts/make_sample.py

flags-doc: $(STAMP)
	$(PYTHON_ENV) scripts/make_flags_doc.py
