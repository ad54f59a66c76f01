# Two commands do everything on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON_ENV := .venv/bin/python
STAMP := .venv/.setup-done

.PHONY: setup demo test dataset-infos sample

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PYTHON_ENV) scripts/demo.py

test: $(STAMP)
	$(PYTHON_ENV) -m pytest $(PYTEST_ARGS)

dataset-infos: $(STAMP)
	$(PYTHON_ENV) scripts/make_dataset_infos.py

sample: $(STAMP)
	$(PYTHON_ENV) scripts/make_sample.py
