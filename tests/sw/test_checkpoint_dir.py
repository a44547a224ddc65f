"""``mixpe checkpoint DIR`` on small seeded GPTQ, AWQ and compressed-tensors checkpoint directories
(safetensors shards written in a tmp dir), and bad directories as one line naming the file and tensor."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gen.cli import main
from sw.checkpoint import CheckpointError
from sw.checkpoint_dir import checkpoint_report


def _reference_packers():
    """The packers written after each format's reference code, in test_checkpoint.py (the tests run
    with --import-mode=importlib, so a sibling test module is loaded by path)."""
    spec = importlib.util.spec_from_file_location("checkpoint_packers", Path(__file__).with_name("test_checkpoint.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_packers = _reference_packers()
as_int32, awq_pack, ct_pack_dense = _packers.as_int32, _packers.awq_pack, _packers.ct_pack_dense
gptq_tensors, random_fields = _packers.gptq_tensors, _packers.random_fields

LAYERS = ("model.layers.0.mlp.down_proj", "model.layers.0.self_attn.q_proj", "model.layers.1.mlp.up_proj")


def gptq_layer(seed, n, k, group, act_order=False):
    codes, zeros, scales = random_fields(seed, n, k, group, 4, zero_low=1)
    qweight, qzeros, s = gptq_tensors(codes, zeros, scales, 4)
    tensors = {"qweight": qweight, "qzeros": qzeros, "scales": s}
    if act_order:
        perm = torch.randperm(k, generator=torch.Generator().manual_seed(seed))
        tensors["g_idx"] = (torch.arange(k) // group)[perm].int()
    return tensors


def awq_layer(seed, n, k, group):
    codes, zeros, scales = random_fields(seed, n, k, group, 4)
    return {"qweight": as_int32(awq_pack(codes.t().numpy())), "qzeros": as_int32(awq_pack(zeros.t().numpy())),
            "scales": scales.t().contiguous()}


def ct_layer(seed, n, k, group, bits=4):
    codes, _, scales = random_fields(seed, n, k, group, bits)
    return {"weight_packed": as_int32(ct_pack_dense(codes.numpy(), bits)), "weight_scale": scales,
            "weight_shape": torch.tensor([n, k], dtype=torch.int64)}


QUANTIZATION = {
    "gptq": {"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": True},
    "awq": {"quant_method": "awq", "bits": 4, "group_size": 64, "version": "gemm", "zero_point": True},
    "compressed-tensors": {"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": {
        "group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int", "symmetric": True,
                                                       "strategy": "group", "group_size": 32}}}},
}
MAKERS = {"gptq": lambda i: gptq_layer(40 + i, 32, 96, 32, act_order=i == 1),
          "awq": lambda i: awq_layer(40 + i, 16, 128, 64),
          "compressed-tensors": lambda i: ct_layer(40 + i, 24, 64, 32)}


def write_checkpoint(directory, method: str, edit=None):
    """config.json and two shards (the first two layers, the third with the norm) plus the index."""
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"model_type": "llama",
                                                       "quantization_config": QUANTIZATION[method]}))
    state = {f"{prefix}.{leaf}": value.contiguous() for i, prefix in enumerate(LAYERS)
             for leaf, value in MAKERS[method](i).items()}
    state["model.norm.weight"] = torch.ones(8)
    if edit is not None:
        edit(state)
    shards = {"model-00001-of-00002.safetensors": {}, "model-00002-of-00002.safetensors": {}}
    for name, value in state.items():
        shard = "model-00002-of-00002.safetensors" if LAYERS[2] in name else "model-00001-of-00002.safetensors"
        shards[shard][name] = value
    for shard, tensors in shards.items():
        save_file(tensors, str(directory / shard))
    weight_map = {name: shard for shard, tensors in shards.items() for name in tensors}
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return directory


@pytest.mark.parametrize("method", list(QUANTIZATION))
def test_every_layer_runs_on_the_array_within_the_bound(tmp_path, method):
    report = checkpoint_report(write_checkpoint(tmp_path / method, method), check=True, tokens=4)
    assert report["summary"] == "3 of 3 quantized layers run on the array"
    assert report["all_bit_exact"] and report["max_err_over_bound"] <= 1
    records = {r["name"]: r for r in report["layers"]}
    assert set(records) == set(LAYERS)
    first = records[LAYERS[0]]
    assert first["config"]["weight_bits"] == 4 and first["config"]["zero_mode"] == "integer"
    assert first["group_size"] == QUANTIZATION[method].get("group_size", 32)
    assert records[LAYERS[1]]["act_order"] == (method == "gptq")


def test_gpt_oss_mxfp4_experts(tmp_path):
    """gpt-oss stores its experts as MXFP4 (E, N, K/32, 16) blocks and (E, N, K/32) exponents."""
    directory = tmp_path / "tiny-gpt-oss"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"model_type": "gpt_oss", "quantization_config": {
        "quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router"]}}))
    gen = torch.Generator().manual_seed(7)
    state = {"model.layers.0.mlp.router.weight": torch.randn(4, 64, generator=gen).bfloat16()}
    for name, (n, k) in {"gate_up_proj": (32, 64), "down_proj": (64, 32)}.items():
        prefix = f"model.layers.0.mlp.experts.{name}"
        state[f"{prefix}_blocks"] = torch.randint(0, 256, (4, n, k // 32, 16), generator=gen, dtype=torch.uint8)
        state[f"{prefix}_scales"] = torch.randint(118, 130, (4, n, k // 32), generator=gen, dtype=torch.uint8)
    save_file(state, str(directory / "model.safetensors"))
    report = checkpoint_report(directory, check=True, tokens=4)
    assert report["summary"] == "2 of 2 quantized layers run on the array"
    assert report["all_bit_exact"] and report["max_err_over_bound"] <= 1
    record = report["layers"][0]
    assert record["name"] == "model.layers.0.mlp.experts.down_proj" and record["shape"] == [4, 64, 32]
    assert (record["config"]["weight_format"], record["config"]["scale_format"]) == ("fp4_e2m1", "e8m0")
    state["model.layers.0.mlp.experts.down_proj_scales"][1, 2, 0] = 255
    save_file(state, str(directory / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model.safetensors: model.layers.0.mlp.experts.down_proj_scales: "
                                              r"E8M0 code 255 \(NaN\) at index \(1, 2, 0\)"):
        checkpoint_report(directory)


def test_cli_writes_the_report(tmp_path, capsys):
    directory = write_checkpoint(tmp_path / "tiny-gptq", "gptq")
    out = tmp_path / "report.json"
    assert main(["checkpoint", str(directory), "--quiet", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["on_array"] == 3
    text = capsys.readouterr().out
    assert "3 of 3 quantized layers run on the array" in text and "ckpt-w4-g32-fp16-16x16" in text


def drop(name):
    return lambda state: state.pop(name)


def replace(name, value):
    return lambda state: state.__setitem__(name, value)


def nan_scale(state):
    scales = state[f"{LAYERS[2]}.scales"].clone()
    scales[1, 3] = float("nan")
    state[f"{LAYERS[2]}.scales"] = scales


@pytest.mark.parametrize("edit, fragment", [
    (drop(f"{LAYERS[0]}.qzeros"), rf"model-00001-of-00002.safetensors: {LAYERS[0]}.qzeros: missing"),
    (replace(f"{LAYERS[0]}.scales", torch.ones(3, 16, dtype=torch.float16)),
     rf"model-00001-of-00002.safetensors: {LAYERS[0]}.scales: shape \(3, 16\), expected \(G, 32\)"),
    (nan_scale, rf"model-00002-of-00002.safetensors: {LAYERS[2]}.scales: value nan at index \(1, 3\)"),
])
def test_bad_tensors_are_one_line_naming_file_and_tensor(tmp_path, capsys, edit, fragment):
    directory = write_checkpoint(tmp_path / "bad", "gptq", edit)
    with pytest.raises(CheckpointError, match=fragment):
        checkpoint_report(directory)
    assert main(["checkpoint", str(directory), "--quiet", "--out", str(tmp_path / "r.json")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.startswith("mixpe checkpoint: ")


def test_bad_directories(tmp_path):
    directory = write_checkpoint(tmp_path / "ok", "awq")
    (directory / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"ok/config.json: missing"):
        checkpoint_report(directory)
    (directory / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "hqq"}}))
    with pytest.raises(CheckpointError, match=r"config.json: quantization_config.quant_method='hqq'"):
        checkpoint_report(directory)
    (directory / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(CheckpointError, match=r"config.json: no quantization_config"):
        checkpoint_report(directory)
    (directory / "config.json").write_text(json.dumps({"quantization_config": QUANTIZATION["awq"]}))
    (directory / "model-00002-of-00002.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(CheckpointError, match=r"model-00002-of-00002.safetensors: not a readable safetensors"):
        checkpoint_report(directory)
    (directory / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"index.json: tensor .* is mapped to shard model-00002-of-00002"
                                              r".safetensors, which is missing"):
        checkpoint_report(directory)
