"""Formal proofs (gen/formal, `make formal`): the default tier proves the PE's group accumulation
(induction) and the FP8 aligner's rounding (all inputs), checks the handshake cones, and shows a
broken PE fails; the stream proofs of mpgemm and the other formats are slow."""

import pytest

import gen.formal.harness as harness
from gen.formal import (DEEP, PROOFS, Proof, combinational_inputs, deep_proofs, forbidden_dependencies,
                        formal_config, run_proof, smoke_proofs)
from hw.emit import build_block
from hw.pe import ProcessingElement

pytestmark = pytest.mark.synth


@pytest.mark.parametrize("proof", smoke_proofs(), ids=lambda proof: proof.name)
def test_smoke_proofs_hold(proof, tmp_path):
    result = run_proof(proof, tmp_path)
    assert result.status == "proven", result


class _OffByOnePE(ProcessingElement):
    def accumulate(self, m, accumulator):
        return super().accumulate(m, accumulator) + (self.x == 3)


def test_a_broken_pe_gives_a_counterexample(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "ProcessingElement", _OffByOnePE)
    result = run_proof(smoke_proofs()[0], tmp_path)
    assert result.status == "failed" and (tmp_path / "cex.vcd").is_file(), result


def test_result_stream_valid_and_payload_do_not_depend_on_ready(tmp_path):
    cones = combinational_inputs(build_block("mpgemm", formal_config()), tmp_path)
    assert cones["res__valid"] == [] and cones["res__payload"] == []
    # A sink may wait for valid: the core's ready outputs depend on the inputs' valid, never on res.
    for name in ("act__ready", "wgt__ready", "grp__ready"):
        assert cones[name] == ["act__valid", "grp__valid", "wgt__valid"], cones
    assert forbidden_dependencies(cones) == []
    assert forbidden_dependencies({"res__valid": ["res__ready"]}) == ["res__valid depends on res__ready"]


@pytest.mark.slow
@pytest.mark.parametrize("proof", [p for p in deep_proofs() if p not in smoke_proofs()], ids=lambda proof: proof.name)
def test_deep_proofs_hold(proof, tmp_path):
    result = run_proof(proof, tmp_path, timeout=3600)
    assert result.passed, result


@pytest.mark.slow
def test_stream_latency_bound_is_tight(tmp_path):
    """One cycle less than the default bound fails: the latency property is tight, not vacuous."""
    config = formal_config()
    proof = Proof("tight", lambda c: harness.StreamHarness(c, latency_bound=c.result_offset - 2), config,
                  config.result_offset + 12, "")
    assert run_proof(proof, tmp_path, timeout=3600).status == "failed"


def test_make_formal_runs_every_proof():
    assert {p.name for p in smoke_proofs()} < {p.name for p in PROOFS[DEEP]()}
