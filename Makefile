# Two commands do all the set-up from a fresh clone:
#   make demo   the whole pipeline on the embedded phantom (outputs under runs/demo/)
#   make test   the test suite (what .ci/run calls)
#   make study  the longer "does anatomy help?" study, after make demo (outputs under runs/study/)
#   make adapt-seeds  the tiny default adaptation over three seeds on the full-scale phantom, side by
#               side (ADAPT_JOBS=3, one thread each), about 95 min on 2 cores (outputs and tables under
#               runs/seeds/, see docs/lpsam.md; ADAPT_JOBS=1 for one seed at a time at two threads)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= runs/demo
PYTEST_ARGS ?=
ADAPT_JOBS ?= 3
# CPU-only machines: make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu installs the CPU
# torch wheels first (no CUDA/NCCL/cuDNN packages, see docs/install.md)
TORCH_INDEX ?=

.PHONY: demo study adapt-seeds test lint bench clean-demo

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(PY) -m pip install --quiet --disable-pip-version-check torch torchvision --index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check maskgen pretrain evaluate tests benchmarks
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check maskgen pretrain evaluate tests benchmarks

demo: $(STAMP)
	bash scripts/demo.sh $(DEMO)

study: $(STAMP)
	bash scripts/study.sh $(DEMO) runs/study

adapt-seeds: $(STAMP)
	JOBS=$(ADAPT_JOBS) bash scripts/adapt_seeds.sh runs/seeds

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-demo:
	rm -rf $(DEMO)
