# Two entry points on a fresh clone: `make demo` (main job) and `make test`.
# Each creates .venv when missing and installs the package (editable) with the
# pinned torch/torchvision pair from constraints.txt.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sss-installed

.PHONY: demo test lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	@touch $(STAMP)

# Until the end-to-end demo lands, the main job is the Bi-WKV kernel benchmark.
demo: $(STAMP)
	$(PY) benchmarks/bench_bi_wkv.py $(DEMO_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) lint
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
