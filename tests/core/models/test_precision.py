"""Precision follows the machine, not the file: a model saved in bfloat16 predicts in float32 where
bf16 is not computed in hardware, with the same masks (issue 23)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from emviewer import config
from emviewer.core import backend
from emviewer.core.models.card import ModelCard
from emviewer.core.models.loading import load_model, run_precision

BF16 = ModelCard(object="mito", precision="mixed_bfloat16")


def test_float32_unless_trained_in_bf16_and_the_cpu_computes_it(monkeypatch):
    monkeypatch.setattr(backend, "cpu_has_fast_bfloat16", lambda: True)  # an AMX CPU cannot be made here
    assert run_precision(BF16, accelerator=False)[0] == "mixed_bfloat16"
    assert run_precision(BF16, accelerator=True) == ("float32", "trained in bfloat16; float32 on a GPU")
    assert run_precision(ModelCard(object="mito", precision="float32"), accelerator=False)[0] == "float32"
    assert run_precision(ModelCard(object="mito"), accelerator=False)[0] == "float32"  # older cards say nothing
    monkeypatch.setattr(backend, "cpu_has_fast_bfloat16", lambda: False)
    policy, why = run_precision(BF16, accelerator=False)
    assert policy == "float32" and "in software" in why


def test_an_instruction_set_cap_below_bf16_keeps_float32(monkeypatch):
    monkeypatch.setattr(backend, "cpu_has_fast_bfloat16", lambda: True)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")  # as on a CPU without AVX-512: bf16 emulated
    assert run_precision(BF16, accelerator=False) == (
        "float32",
        "trained in bfloat16; ONEDNN_MAX_CPU_ISA=AVX2 leaves bfloat16 to software",
    )
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")  # a cap that keeps bf16 instructions
    assert backend.bf16_isa_cap() is None
    assert run_precision(BF16, accelerator=False)[0] == "mixed_bfloat16"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX512_CORE")  # the older name; AVX-512 without bf16
    assert backend.bf16_isa_cap() == "AVX512_CORE"


@pytest.fixture(scope="module")
def bf16_model():
    entry = next(e for e in config.installed_models() if e.bundled and e.card.precision == "mixed_bfloat16")
    return entry


def test_a_bf16_model_predicts_in_float32_with_the_same_masks(bf16_model, cdeep3m):
    as_saved = load_model(bf16_model.path, precision="mixed_bfloat16")
    float32 = load_model(bf16_model.path, precision="float32")
    assert {layer.compute_dtype for layer in float32.model.layers} == {"float32"}
    assert "bfloat16" in {layer.compute_dtype for layer in as_saved.model.layers}
    image = np.asarray(Image.open(cdeep3m / "testset" / "images.081.png"), np.float32)[256:512, 256:512] / 255
    batch = np.repeat(image[None, :, :, None], bf16_model.card.context, axis=-1)
    low, high = as_saved.predict(batch)[..., 0], float32.predict(batch)[..., 0]
    assert np.abs(low - high).mean() < 0.01  # bf16 keeps about 3 significant digits
    threshold = bf16_model.card.threshold
    assert np.mean((low >= threshold) != (high >= threshold)) < 0.005
    # no precision asked: the one this machine gets
    assert load_model(bf16_model.path).model.layers[-1].compute_dtype == (
        "bfloat16" if run_precision(bf16_model.card)[0] == "mixed_bfloat16" else "float32"
    )
