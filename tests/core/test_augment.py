"""Tests for emviewer.core.augment: the 16 test-time variants and their inverses."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emviewer.core import augment
from emviewer.core.augment import IDENTITY, Variant, apply, invert, variants

RNG = np.random.default_rng(0)

# Non-square on purpose: odd rotations must swap Y and X, and the inverse swap them back.
SHAPES = [(7, 5), (7, 5, 1), (2, 7, 5, 1), (1, 6, 11, 1)]


@pytest.mark.parametrize("n", [1, 8, 16])
@pytest.mark.parametrize("shape", SHAPES)
def test_apply_then_invert_round_trips_exactly(n, shape):
    x = RNG.random(shape).astype(np.float32)
    for variant in variants(n):
        y = invert(apply(x, variant), variant)
        assert y.dtype == x.dtype
        np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("n", [1, 8, 16])
def test_round_trip_of_context_input_reverses_only_the_slice_order(n):
    x = RNG.random((2, 6, 9, 5)).astype(np.float32)
    for variant in variants(n):
        expected = x[..., ::-1] if variant.zflip else x
        np.testing.assert_array_equal(invert(apply(x, variant), variant), expected)


@pytest.mark.parametrize("context", [1, 3, 5])
def test_prediction_of_centre_slice_maps_back_for_all_16(context):
    # A "model" that predicts its input's centre slice is equivariant, so every variant's
    # inverted prediction must equal the original centre slice: the z-flip keeps the
    # centre in place and needs no inverse on the output.
    x = RNG.random((2, 8, 13, context)).astype(np.float32)
    centre = context // 2
    for variant in variants(16):
        prediction = apply(x, variant)[..., centre : centre + 1]
        np.testing.assert_array_equal(invert(prediction, variant), x[..., centre : centre + 1])


def test_odd_rotations_swap_y_and_x():
    x = np.zeros((2, 7, 5, 3), dtype=np.uint8)
    for variant in variants(16):
        expected = (2, 5, 7, 3) if variant.rotations % 2 else (2, 7, 5, 3)
        assert apply(x, variant).shape == expected


def test_dihedral_variants_are_distinct():
    x = RNG.random((9, 9))
    images = [apply(x, v) for v in variants(8)]
    for i in range(8):
        for j in range(i + 1, 8):
            assert not np.array_equal(images[i], images[j]), (variants(8)[i], variants(8)[j])


def test_all_16_variants_are_distinct_on_context_input():
    x = RNG.random((9, 9, 3))
    images = [apply(x, v) for v in variants(16)]
    distinct = {img.tobytes() for img in images}
    assert len(distinct) == 16


def test_layouts_agree():
    # A slice, a slice with channels and a batch of them are transformed alike.
    x = RNG.random((4, 6, 10, 3)).astype(np.float32)
    for variant in variants(16):
        batch = apply(x, variant)
        for i in range(len(x)):
            np.testing.assert_array_equal(batch[i], apply(x[i], variant))
            if not variant.zflip:
                np.testing.assert_array_equal(batch[i, ..., 0], apply(x[i, ..., 0], variant))


def test_known_transform():
    x = np.array([[1, 2, 3], [4, 5, 6]])
    # One counter-clockwise quarter turn after a left-right mirror.
    np.testing.assert_array_equal(apply(x, Variant(rotations=1, flip=True)), [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(apply(x, Variant(rotations=1)), [[3, 6], [2, 5], [1, 4]])


def test_variant_list():
    assert variants(1) == [IDENTITY]
    assert variants(16)[:8] == variants(8)
    assert len(set(variants(16))) == 16
    assert [v.zflip for v in variants(8)] == [False] * 8
    assert str(Variant(rotations=3, flip=True, zflip=True)) == "r270-flip-zflip"


def test_outputs_are_contiguous_copies():
    x = RNG.random((5, 7, 1))
    for variant in variants(16):
        out = apply(x, variant)
        assert out.flags.c_contiguous
        assert not np.shares_memory(out, x)
        back = invert(out, variant)
        assert back.flags.c_contiguous and not np.shares_memory(back, out)


@pytest.mark.parametrize("n", [0, 2, 4, 32])
def test_bad_variant_count_is_refused(n):
    with pytest.raises(ValueError, match="1, 8 or 16"):
        variants(n)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="rotations"):
        Variant(rotations=4)
    with pytest.raises(ValueError, match="shape"):
        augment.apply(np.zeros(5), IDENTITY)
    with pytest.raises(ValueError, match="shape"):
        augment.invert(np.zeros((1, 2, 3, 4, 5)), IDENTITY)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 5)),
    index=st.integers(0, 15),
    seed=st.integers(0, 2**16),
)
def test_round_trip_property(shape, index, seed):
    x = np.random.default_rng(seed).integers(0, 255, size=shape, dtype=np.uint8)
    variant = variants(16)[index]
    restored = invert(apply(x, variant), variant)
    np.testing.assert_array_equal(restored, x[..., ::-1] if variant.zflip else x)
    np.testing.assert_array_equal(invert(apply(x[..., 0], variant), variant), x[..., 0])
