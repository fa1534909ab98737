"""Labelled training data: image/label stacks paired by number, random augmented crops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from . import augment
from .errors import InputError
from .intensity import DEFAULT_REFERENCE
from .io import ReadOptions, open_volume
from .mining import ErrorMaps
from .noise import box_blur, gaussian_noise, salt_and_pepper
from .preprocess import context_indices, input_levels, normalise, reflect_indices
from .validate import check_image, check_same_shape, label_to_mask, pair_slices, unpaired_warning
from .volume import from_array


@dataclass
class LabelledStack:
    """Images ``(Z, Y, X)`` in their dtype, object masks ``(Z, Y, X)`` bool, paired by number
    (or by order).

    Slices are in the image order, so neighbours in Z are neighbours in the stack. The
    slices of either side that found no partner are kept by name, for a warning.
    """

    images: np.ndarray
    masks: np.ndarray
    names: list[str]
    levels: tuple[float, float]
    source: str
    unpaired_images: list[str] = field(default_factory=list)
    unpaired_labels: list[str] = field(default_factory=list)
    label_source: str = ""
    reference: tuple[float, float] = DEFAULT_REFERENCE  # model-input levels of the tissue (core.intensity)
    pixel_size: tuple | None = None  # the images' voxel size (z, y, x) in nm, when known

    def __len__(self) -> int:
        return len(self.names)

    def split(self, indices: Sequence[int]) -> LabelledStack:
        indices = list(indices)
        names = [self.names[i] for i in indices]  # the part keeps where it came from, its levels and voxel size
        return replace(
            self,
            images=self.images[indices],
            masks=self.masks[indices],
            names=names,
            unpaired_images=[],
            unpaired_labels=[],
        )

    def warnings(self) -> list[str]:
        """One line per side with slices that found no partner (``[]`` when all paired)."""
        sides = ((self.unpaired_images, "image", self.source), (self.unpaired_labels, "label", self.label_source))
        return [unpaired_warning(names, kind, source) for names, kind, source in sides if names]

    def model_input(self, z: int, context: int) -> np.ndarray:
        """Whole slice ``z`` with its context as ``(Y, X, context)`` float32 in [0, 1]."""
        return np.stack(
            [normalise(self.images[i], self.levels) for i in context_indices(z, len(self), context)], axis=-1
        )


def load_labelled(
    images: str,
    labels: str,
    foreground: Sequence[float] | None = None,
    invert: bool = False,
    pair_by: str = "number",
    reference: Sequence[float] | None = None,
    options: ReadOptions | None = None,
) -> LabelledStack:
    """Read an image folder/stack and its labels, pair their slices and check the rules.

    ``pair_by`` is ``"number"`` (the number in the names) or ``"order"`` (position in natural
    order, equal counts); see :func:`~emviewer.core.validate.pair_slices`. The images' model
    input maps their tissue percentiles onto ``reference`` (default
    :data:`~emviewer.core.intensity.DEFAULT_REFERENCE`; a fine-tuned model keeps its parent's).
    ``options`` (channel, axes, voxel size) apply to the images. Slices of one side
    without a partner are skipped and recorded in ``unpaired_images`` / ``unpaired_labels``.

    Raises
    ------
    PairingError
        When the two numberings do not line up one to one (see
        :func:`~emviewer.core.validate.pair_by_number`), or by order, the counts differ.
    InputError
        For unreadable files, binary images, label values or shapes that break the rules.
    """
    with open_volume(images, options) as image_vol, open_volume(labels) as label_vol:
        pairing = pair_slices(image_vol.slice_names, label_vol.slice_names, image_vol.source, label_vol.source, pair_by)
        image_slices, masks, names = [], [], []
        for i, j in pairing.pairs:
            image, label = image_vol.slice(i), label_vol.slice(j)
            where = f"{image_vol.source} ({image_vol.slice_names[i]})"
            check_image(image, where)
            check_same_shape(image.shape, label.shape, where, f"{label_vol.source} ({label_vol.slice_names[j]})")
            image_slices.append(image)
            masks.append(label_to_mask(label, f"{label_vol.source} ({label_vol.slice_names[j]})", foreground, invert))
            names.append(image_vol.slice_names[i])
        stack = np.stack(image_slices)
        low, high = reference or DEFAULT_REFERENCE  # two levels: (low, high)
        target = (low, high)
        levels = input_levels(from_array(stack), target)
    unpaired = (pairing.unpaired_a, pairing.unpaired_b)
    return LabelledStack(
        stack,
        np.stack(masks),
        names,
        levels,
        image_vol.source,
        *unpaired,
        label_vol.source,
        target,
        image_vol.pixel_size,
    )


def holdout_split(stack: LabelledStack, fraction: float = 0.15) -> tuple[LabelledStack, LabelledStack]:
    """Training and validation parts: the last ``fraction`` of the slices (at least one) held out.

    A contiguous block at the end, not random slices, so validation slices are not
    neighbours of training slices (which would leak context).
    """
    if len(stack) < 2:
        raise InputError(
            stack.source, "needs at least two labelled slices to hold one out for validation (or give --val-images)"
        )
    n_val = max(1, int(round(len(stack) * fraction)))
    return stack.split(range(len(stack) - n_val)), stack.split(range(len(stack) - n_val, len(stack)))


@dataclass
class Augmentation:
    """Random changes applied to training crops; probabilities and strengths."""

    dihedral: bool = True
    zflip: bool = True
    brightness: float = 0.08  # added offset, +- in [0, 1] units
    contrast: float = 0.2  # multiplicative, 1 +- this
    gaussian_sigma: float = 0.04
    salt_pepper_max: float = 0.12  # fraction of pixels, drawn uniformly up to this
    noise_probability: float = 0.3
    blur_probability: float = 0.15

    def __call__(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Augment one ``(T, T, C)`` input and its ``(T, T)`` mask together."""
        if self.dihedral:
            variant = augment.Variant(int(rng.integers(4)), bool(rng.integers(2)), self.zflip and bool(rng.integers(2)))
            x, y = augment.apply(x, variant), augment.apply(y, augment.Variant(variant.rotations, variant.flip))
        x = (
            (x - 0.5) * (1 + rng.uniform(-self.contrast, self.contrast))
            + 0.5
            + rng.uniform(-self.brightness, self.brightness)
        )
        if rng.random() < self.blur_probability:
            x = box_blur(x, 1)
        if rng.random() < self.noise_probability:
            x = gaussian_noise(x, float(rng.uniform(0, self.gaussian_sigma)), rng)
        if rng.random() < self.noise_probability:
            x = salt_and_pepper(np.clip(x, 0, 1), float(rng.uniform(0, self.salt_pepper_max)), rng)
        return np.clip(x, 0, 1).astype(np.float32), y


def crop(stack: LabelledStack, z: int, y0: int, x0: int, side: int, context: int) -> np.ndarray:
    """The model's input for the ``side`` x ``side`` square of slice ``z`` from ``(y0, x0)``:
    ``(side, side, context)`` float32 in [0, 1] (normalised with the stack's levels; slice and
    neighbours mirrored at the stack's ends, pixels beyond its edges by reflection)."""
    _, height, width = stack.images.shape
    rows, cols = reflect_indices(np.arange(y0, y0 + side), height), reflect_indices(np.arange(x0, x0 + side), width)
    planes = context_indices(z, len(stack), context)
    return np.stack([normalise(stack.images[i][np.ix_(rows, cols)], stack.levels) for i in planes], axis=-1)


def random_batch(
    stacks: Sequence[LabelledStack],
    batch: int,
    tile: int,
    context: int,
    rng: np.random.Generator,
    augmentation: Augmentation | None,
    hard: ErrorMaps | None = None,
    hard_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` random crops: inputs ``(B, T, T, context)`` float32, targets ``(B, T, T, 1)``.

    Stacks are drawn in proportion to their slice area; slices smaller than the tile are
    padded by reflection. With error maps, ``hard_fraction`` of the crops are centred where
    the model errs (hard-example mining), the rest drawn uniformly.
    """
    weights = np.array([s.images.size for s in stacks], np.float64)
    xs, ys = [], []
    for _ in range(batch):
        if hard is not None and rng.random() < hard_fraction:
            index, z, cy, cx = hard.pick_centre(rng)
            stack = stacks[index]
            _, height, width = stack.images.shape
            y0, x0 = (int(np.clip(c - tile // 2, 0, max(0, size - tile))) for c, size in ((cy, height), (cx, width)))
        else:
            stack = stacks[int(rng.choice(len(stacks), p=weights / weights.sum()))]
            z = int(rng.integers(len(stack)))
            _, height, width = stack.images.shape
            y0, x0 = int(rng.integers(max(1, height - tile + 1))), int(rng.integers(max(1, width - tile + 1)))
        x = crop(stack, z, y0, x0, tile, context)
        rows, cols = reflect_indices(np.arange(y0, y0 + tile), height), reflect_indices(np.arange(x0, x0 + tile), width)
        y = stack.masks[z][np.ix_(rows, cols)].astype(np.float32)
        if augmentation is not None:
            x, y = augmentation(x, y, rng)
        xs.append(x)
        ys.append(y[..., np.newaxis])
    return np.stack(xs), np.stack(ys)
