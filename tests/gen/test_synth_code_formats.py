"""``make synth``'s PE area per weight-code format (:mod:`gen.synth.code_formats`)."""

import pytest

from gen.synth.code_formats import code_format_section, code_format_sweep
from gen.synth.designs import CODE_FORMAT_PES, block_description, code_format_config, design_formats
from hw.config import from_preset

CONFIG = from_preset("w4a8-g8-2x2")


def test_rows_are_the_codes_of_the_issue():
    variants = {label: code_format_config(CONFIG.replace(zero_mode="float_offset"), fields)
                for label, fields in CODE_FORMAT_PES}
    assert [v.weight_bits for v in variants.values()] == [4, 5, 6, 4, 3, 4]
    assert variants["INT4"].hash == CONFIG.replace(zero_mode="float_offset").hash
    assert variants["FP4 E2M1"].zero_mode == "integer" and variants["FP4 E2M1"].name == CONFIG.name
    assert design_formats("mixpe", variants["pow2 4-bit"]) == ("int8", "pow2_4")
    assert "x << e (a shifter)" in block_description("mixpe", "pe", variants["pow2 3-bit"])
    assert "E2M1" in block_description("mixpe", "pe", variants["FP4 E2M1"])


def test_section_lists_every_row():
    rows = [{"format": label, "code_value_max": 12, "product_bits": 12, "psum_bits": 15, "cells": 400,
             "pe_area_ge": 700.0, "ratio_area_ge": 1.0} for label, _ in CODE_FORMAT_PES]
    lines = code_format_section(CONFIG, rows, "area_ge", "GE")
    assert sum(line.startswith("| ") for line in lines) == 1 + len(CODE_FORMAT_PES)


@pytest.mark.synth
@pytest.mark.slow
def test_sweep_synthesizes_every_code_format(tmp_path):
    rows = code_format_sweep(CONFIG, out_root=tmp_path, log=None)
    area = {row["format"]: row["pe_area_ge"] for row in rows}
    assert rows[0]["ratio_area_ge"] == 1.0 and area["INT4"] < area["INT5"] < area["INT6"]
    assert area["pow2 3-bit"] < area["FP4 E2M1"] < area["INT4"]
