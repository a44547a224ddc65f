"""Conventions of every Amaranth component of :mod:`hw`: documented members and latency, and
bad constructor arguments refused with a ConfigError."""

import importlib
import inspect
import pkgutil

import pytest
from amaranth.lib import wiring

import hw
import hw.baselines
from hw.config import ConfigError, MixPEConfig
from hw.fp_align import ActivationAligner
from hw.fp_int_to_float import IntToFloat32
from hw.fp_mul import Float32Multiplier
from hw.fp_widen import WidenToFloat32


def _components():
    classes = {}
    for package in (hw, hw.baselines):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, wiring.Component) and cls.__module__ == module.__name__:
                    classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return classes


COMPONENTS = _components()


def test_components_found():
    assert {"hw.mpgemm.MPGemm", "hw.issue.IssueScheduler", "hw.param_capture.ParameterCapture",
            "hw.result_reader.ResultReader", "hw.gdu.GroupDequant", "hw.pe.SystolicPE"} <= set(COMPONENTS)


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_component_documents_members_and_latency(name):
    cls = COMPONENTS[name]
    doc = inspect.getdoc(cls) or ""
    for section in ("Members\n-------", "Latency\n-------"):
        assert section in doc, f"{name}: docstring lacks a numpydoc {section.splitlines()[0]!r} section"
    assert isinstance(inspect.getattr_static(cls, "latency"), property), f"{name}: no latency property"


@pytest.mark.parametrize("build, fragment", [
    (lambda: ActivationAligner(MixPEConfig()), "activation='int8': the aligner needs a floating-point format"),
    (lambda: IntToFloat32(1), "width=1: IntToFloat32 takes a signed width from 2 to 64"),
    (lambda: WidenToFloat32(9, 10), "exp_bits=9, man_bits=10: WidenToFloat32 takes"),
    (lambda: Float32Multiplier(-1), "offset_bits=-1: must be a non-negative integer"),
])
def test_bad_arguments_raise_config_errors(build, fragment):
    with pytest.raises(ConfigError, match=fragment):
        build()
