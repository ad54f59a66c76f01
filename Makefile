# Two commands do everything on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON_ENV := .venv/bin/python
STAMP := .venv/.setup-done

.PHONY: setup demo test dataset-infos sample

$(STAMP): pyproject.toml scripts/setup.sh scripts/prepare_models.py
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PYTHON_ENV) scripts/run_benchmark.py --config experiments/demo.yaml $(DEMO_ARGS)

test: $(STAMP)
	$(PYTHON_ENV) -m pytest $(PYTEST_ARGS)

dataset-infos: $(STAMP)
	$(PYTHON_ENV) scripts/make_dataset_infos.py

sample: $(STAMP)
	$(PYTHON_ENV) scripts/make_sample.py
