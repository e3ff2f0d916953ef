# lrfc — set-up, demo, tests, benchmarks. Two commands do everything on a
# fresh machine: `make demo` and `make test` (both install first).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
DEMO   := demo-out

.PHONY: setup demo test test-all bench baselines clean

setup: $(STAMP) $(FMNIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# Real Fashion-MNIST (60k/10k) from Debian's package; works offline of any hub.
$(FMNIST):
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q dataset-fashion-mnist

# The main job on the built-in default: train the tiny Fashion-MNIST CNN,
# inspect it, factorize its layers (data-aware Tucker / SVD) and report.
demo: setup
	$(BIN)/python -m lrfc.baselines --out $(DEMO) --models tiny
	$(BIN)/lrfc inspect $(DEMO)/tiny.keras
	$(BIN)/lrfc decompose $(DEMO)/tiny.keras --method tucker --rank 4 --data fashion-mnist --data-aware -o $(DEMO)/tiny-tucker.keras
	$(BIN)/lrfc decompose $(DEMO)/tiny.keras --method svd --rank 8 --data fashion-mnist --data-aware -o $(DEMO)/tiny-svd.keras
	$(BIN)/lrfc profiles list

test: setup
	$(BIN)/python -m pytest -q

# Slow checks (marked `slow`) and the benchmarks; not part of CI.
bench: setup
	$(BIN)/python -m pytest -q -m slow
	$(BIN)/python -m bench.decompose_time --out docs/BENCHMARKS.md

baselines: setup
	$(BIN)/python -m lrfc.baselines --out models

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info
