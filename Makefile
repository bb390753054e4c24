# Every target creates the virtual environment on first use (`make setup`);
# a second call finds the stamp file and installs nothing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# pytest workers for `make test`; the machines have 2 cores.
JOBS   ?= 2
# Hardware preset (hw/config.py PRESETS): small, dual, default.
CONFIG ?= default

# Preset of the co-simulation regression (`make cosim`).
COSIM_CONFIG ?= small

.PHONY: setup verilog synth test cosim cosim-random layer-speedup digits-accuracy pe-speedup \
        report train-rtl clean distclean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed, found " + sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	touch $(STAMP)

# Emit the RTL and its config JSON into build/rtl/, then lint it with Verilator.
verilog: setup
	$(PY) -m gen verilog --config $(CONFIG) --out build/rtl

# Yosys synthesis per block into build/synth/report.md and report.json.
synth: setup
	$(PY) -m gen synth --config $(CONFIG) --out build/synth

test: setup
	$(PY) -m pytest -n $(JOBS) tests

# The whole-layer co-simulation regression on the top level, with summary tables.
cosim: setup
	$(PY) -m cosim regression --config $(COSIM_CONFIG)

# COUNT constrained-random layer phases of seed SEED on the top level, dense and
# sparse, bit-exact with the golden model (`python -m cosim random`).
SEED  ?= 1
COUNT ?= 200
cosim-random: setup
	$(PY) -m cosim random --seed $(SEED) --count $(COUNT) --config $(COSIM_CONFIG) --jobs $(JOBS)

# Dense vs sparse cycles of every conv layer of a real network on the top level.
layer-speedup: setup
	$(PY) -m cosim layer-speedup --config $(CONFIG)

# Sparse vs dense training speedup and energy of AlexNet and ResNet-18 on the
# paper-scale preset (cycle and energy models): build/report/.
REPORT_CONFIG ?= paper
report: setup
	$(PY) -m gen report --config $(REPORT_CONFIG) --out build/report

# Train the digits CNN for STEPS steps with every FF, BP and WG convolution on
# the RTL, checked bit for bit against the golden integer training loop after
# every step: build/train-rtl/{train.json,loss.png,cycles.png}.
STEPS        ?= 50
TRAIN_CONFIG ?= small
train-rtl: setup
	$(PY) -m cosim train-rtl --steps $(STEPS) --config $(TRAIN_CONFIG) --out build/train-rtl

# Issue 2 evidence: dense vs pruned training of a small CNN on sklearn digits.
digits-accuracy: setup
	$(PY) -m pruning digits-accuracy

# Issue 3 evidence: PE dense vs sparse cycles on rows of the digits CNN, on the RTL.
pe-speedup: setup
	$(PY) -m cosim pe-speedup --config $(CONFIG)

clean:
	rm -rf build .pytest_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
