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
	$(BIN)/python -m pip install -q -e '.[test,ray]'
	touch $(STAMP)

# Real Fashion-MNIST (60k/10k) from Debian's package; works offline of any hub.
$(FMNIST):
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q dataset-fashion-mnist

# A real sshd for the remote-device tests (they start it on loopback themselves).
$(SSHD):
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q openssh-server openssh-client

# The main job on the built-in default: the committed demo model (demo/README.md: a
# 4-conv Fashion-MNIST CNN, 91.6 % test), inspected, then compressed for this host
# under the host's own objective (measured latency) within a 1-point budget. One
# fine-tuning epoch on 10k images per round and three rounds keep it near 4 minutes
# on a fresh 2-core machine (the cost database and scores are cached after that).
demo: setup
	$(BIN)/lrfc inspect demo/demo.keras
	$(BIN)/lrfc build demo/demo.keras --data fashion-mnist --target host --max-acc-drop 1.0 --epochs 1 --train-samples 10000 --max-rounds 3 --out $(DEMO)/build
	@echo "report: $(DEMO)/build/report.html"

# Two workers, one test file each at a time (a module's fixtures are built once): on this
# 2-core machine the suite took 7.7 minutes against 13-16 one file after another (2026-12-02).
# Most of a test's time is a child process importing TensorFlow and converting models, on one
# core. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Slow checks (marked `slow`) and the benchmarks; not part of CI.
bench: setup models/.trained models/tiny.keras
	$(BIN)/python -m pytest -q -m slow -p no:cacheprovider
	$(BIN)/python -m bench.decompose_time
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.quality
	$(BIN)/python -m bench.budget
	$(BIN)/python -m bench.proxy
	$(BIN)/python -m bench.speed --models vgg,resnet --rows latency,flops,int8,int8-qat
	$(BIN)/python -m bench.probe
	$(BIN)/python -m bench.foreign
	$(BIN)/python -m bench.chains
	$(BIN)/python -m bench.chains --runtime onnxruntime-cpu
	$(BIN)/python -m bench.delegation
	$(BIN)/python -m bench.qat --plan bench/work/speed/vgg-int8/plan.json
	$(BIN)/python -m bench.equalize --models vgg,resnet,resnet50-caffe
	$(BIN)/python -m bench.scale --until score
	$(BIN)/python -m bench.scale --models resnet50-64 --tag=-whole
	$(BIN)/python -m bench.scale --models resnet50-224 --until score --tag=-budget4g --extra "--memory-budget 4G"
	$(BIN)/python -m bench.sensitivity --models vgg,resnet --builds 2
	$(BIN)/python -m bench.fits
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
