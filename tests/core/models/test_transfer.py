"""Weights move between contexts: a wider context computes what the narrower one did."""

from __future__ import annotations

import numpy as np
import pytest

from emviewer.core.models import build_model
from emviewer.core.models.transfer import adapt_input_kernel, copy_weights


def test_kernel_grows_with_zero_outer_slices_and_shrinks_by_adding_them_in():
    kernel = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4)
    wider = adapt_input_kernel(kernel, 5)
    np.testing.assert_array_equal(wider[:, :, 1:4], kernel)
    assert not wider[:, :, [0, 4]].any()
    np.testing.assert_array_equal(adapt_input_kernel(kernel, 1)[:, :, 0], kernel.sum(axis=2))
    np.testing.assert_array_equal(adapt_input_kernel(wider, 3), kernel)  # there and back
    five = np.random.default_rng(0).normal(size=(3, 3, 5, 2))
    three = adapt_input_kernel(five, 3)
    np.testing.assert_allclose(three[:, :, 0], five[:, :, 0] + five[:, :, 1])
    np.testing.assert_allclose(three[:, :, 2], five[:, :, 3] + five[:, :, 4])


@pytest.mark.parametrize("arch", ["multiresunet", "deepem3d"])
def test_models_of_other_contexts_give_the_same_answers(arch):
    rng = np.random.default_rng(1)
    source = build_model(arch, 3, 8, 2)
    # random batch-norm statistics, so the check covers every weight, not just the kernels
    source.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in source.get_weights()])
    slices = rng.random((1, 64, 64, 5)).astype(np.float32)
    expected = source.predict(slices[..., 1:4], verbose=0)
    wider = build_model(arch, 5, 8, 2)
    copy_weights(source, wider)
    np.testing.assert_allclose(wider.predict(slices, verbose=0), expected, atol=1e-5)
    # one slice stands for a stack whose neighbours equal it
    narrower = build_model(arch, 1, 8, 2)
    copy_weights(source, narrower)
    centre = slices[..., 2:3]
    np.testing.assert_allclose(
        narrower.predict(centre, verbose=0), source.predict(np.repeat(centre, 3, axis=-1), verbose=0), atol=1e-5
    )


def test_networks_of_other_widths_are_refused():
    with pytest.raises(ValueError, match="the networks differ"):
        copy_weights(build_model("deepem3d", 3, 8, 2), build_model("deepem3d", 3, 16, 2))
