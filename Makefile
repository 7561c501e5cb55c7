# Two entry points on a fresh clone: `make demo` (main job) and `make test`.
# Each creates .venv when missing and installs the package (editable, with the test and deploy
# extras: the ONNX tests run in CI) with the pinned torch/torchvision pair from constraints.txt.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sss-installed

.PHONY: demo test lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test,deploy]'
	@touch $(STAMP)

# The main job: synthetic CT dataset -> stock nnU-Net plan/train/predict -> evaluation (CPU, ~11 min).
demo: $(STAMP)
	$(VENV)/bin/sss-nnunet demo $(DEMO_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) lint
	$(PY) -m pytest --durations=40 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
