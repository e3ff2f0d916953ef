# lrfc — set-up, demo, tests, benchmarks. Two commands do everything on a
# fresh machine: `make demo` and `make test` (both install first).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SSHD   := /usr/sbin/sshd
DEMO   := demo-out

.PHONY: setup demo test test-all bench bench-quick baselines clean

setup: $(STAMP) $(FMNIST) $(SSHD)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# Real Fashion-MNIST (60k/10k) from Debian's package; works offline of any hub.
$(FMNIST):
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q dataset-fashion-mnist

# The main job on the built-in default: train the tiny Fashion-MNIST CNN
# (seconds), inspect it, then compress it with `lrfc build` for the host.
# --objective flops: under the host's default (latency) every layer of this
# tiny model is kept, because no factorized chain of a microsecond layer is
# faster on this CPU (measured); the demo shows the compression path instead.
# A real sshd for the remote-device tests (they start it on loopback themselves).
$(SSHD):
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q openssh-server openssh-client

demo: setup
	$(BIN)/python -m lrfc.train.baselines --out $(DEMO) --models tiny --epochs 3
	$(BIN)/lrfc inspect $(DEMO)/tiny.keras
	$(BIN)/lrfc build $(DEMO)/tiny.keras --data fashion-mnist --target host --objective flops --epochs 3 --train-samples 20000 --out $(DEMO)/build
	@echo "report: $(DEMO)/build/report.html"

test: setup
	$(BIN)/python -m pytest -q

# Slow checks (marked `slow`) and the benchmarks; not part of CI.
bench: setup models/.trained models/tiny.keras
	$(BIN)/python -m pytest -q -m slow -p no:cacheprovider
	$(BIN)/python -m bench.decompose_time
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.quality
	$(BIN)/python -m bench.budget
	$(BIN)/python -m bench.render

# The quality harness at a small budget (VGG only, end points of each sweep, 1 epoch on 2,000 images):
# 13 minutes here once models/vgg.keras exists (training it the first time takes about 25 minutes).
bench-quick: setup models/vgg.keras models/tiny.keras
	$(BIN)/python -m bench.quality --quick
	$(BIN)/python -m bench.render

models/vgg.keras models/tiny.keras: | setup
	$(BIN)/python -m lrfc.train.baselines --out models --models $(basename $(notdir $@))

models/.trained: | setup
	$(BIN)/python -m lrfc.train.baselines --out models
	touch $@

baselines: setup
	$(BIN)/python -m lrfc.train.baselines --out models

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info
