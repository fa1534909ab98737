"""The data rules: images are not binary, labels are binary, shapes match, pairing by number.

Each rule raises an :class:`InputError` subclass whose message names the file and says
what to do, so a biologist can fix the input without reading code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ImageContentError, InputError, PairingError, ShapeMismatchError
from .intensity_stats import sample_slices
from .io.common import natural_key, numbers_in, short_list


def parse_values(text: str | None, what: str = "foreground") -> list[float] | None:
    """``"2"`` -> ``[2.0]``, ``"1, 2"`` -> ``[1.0, 2.0]``; empty -> ``None`` (use the default rule)."""
    if text is None or not str(text).strip():
        return None
    try:
        return [float(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise InputError(None, f"{what} {text!r} is not a value or a list of values like 2 or 1,2") from None


def distinct_values(array: np.ndarray, limit: int = 10) -> np.ndarray:
    """Up to ``limit`` distinct values of ``array``, sorted (cheap for 8-bit images)."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        # bincount works on a 64-bit copy of its input: counted 4 Mpx at a time, a huge slice
        # costs no more than that (whole, a 16000 x 10000 slice took 1.3 GB)
        flat, counts = array.ravel(), np.zeros(256, np.int64)
        for start in range(0, flat.size, 1 << 22):
            counts += np.bincount(flat[start : start + (1 << 22)], minlength=256)
        return np.flatnonzero(counts)[:limit].astype(np.uint8)
    return np.unique(array)[:limit]


def _format_values(values: np.ndarray, limit: int = 8) -> str:
    return short_list([f"{v:g}" for v in values], limit)


def check_image(image: np.ndarray, source) -> None:
    """Refuse an image with two values or fewer: it is a mask, not an EM image."""
    values = distinct_values(image, limit=3)
    if len(values) <= 2:
        raise ImageContentError(
            source,
            f"the image is binary (values {_format_values(values)}): give the raw EM image here, not a mask or label",
        )


def label_to_mask(
    label: np.ndarray, source, foreground: Sequence[float] | None = None, invert: bool = False, what: str = "label"
) -> np.ndarray:
    """Turn a label image into a boolean object mask, ``(Y, X)`` or ``(Z, Y, X)``.

    With ``foreground`` the listed values are the object and everything else background.
    Without it the label must hold at most two values, and the larger one is the object
    (0/1 and 0/255 both work). ``invert`` swaps object and background afterwards, for sets
    such as ISBI 2012 where the object (membrane) is the dark value.
    """
    if foreground:
        mask = np.isin(label, np.asarray(foreground, dtype=label.dtype))
    else:
        values = distinct_values(label, limit=10)
        if len(values) > 2:
            advice = (
                "say which value is the object with --foreground V[,V]"
                if what == "label"
                else "give masks (0/255 or 0/1), not images or probabilities"
            )
            raise ImageContentError(source, f"{what} is not binary: it holds values {_format_values(values)}; {advice}")
        mask = label > values[0] if len(values) == 2 else label > 0
    return ~mask if invert else mask


def check_same_shape(image_shape: Sequence[int], label_shape: Sequence[int], image_source, label_source) -> None:
    """Image and label must have the same ``(Y, X)`` (or ``(Z, Y, X)``) shape."""
    if tuple(image_shape) != tuple(label_shape):
        raise ShapeMismatchError(
            label_source,
            f"has shape {tuple(label_shape)} but {image_source} has shape {tuple(image_shape)}; they must match",
        )


PAIR_BY = ("number", "order")

#: How a refusal offers the way out, on the command line and in the app.
ORDER_HINT = (
    'if both hold the same slices in the same order, pair them by order (--pair-by order; in the app: Pair by "order")'
)


@dataclass
class Pairing:
    """Result of :func:`pair_slices`: ``(index in a, index in b)`` pairs, sorted by the first,
    and the names of each side that stayed unpaired."""

    pairs: list[tuple[int, int]]
    unpaired_a: list[str]
    unpaired_b: list[str]


def _keys(names: Sequence[str], n_numbers: int, source) -> dict[tuple, int]:
    keys: dict[tuple, int] = {}
    for i, name in enumerate(names):
        numbers = numbers_in(name)
        key = numbers[-n_numbers:] if numbers and n_numbers else (name,)
        if key in keys:
            raise PairingError(
                source, f"{names[keys[key]]!r} and {name!r} carry the same number {key}; pairing is ambiguous"
            )
        keys[key] = i
    return keys


def _runs(values: list[int]) -> list[str]:
    """``[1, 2, 3, 5]`` -> ``["1-3", "5"]``."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return [f"{a}" if a == b else f"{a}-{b}" for a, b in runs]


def describe_keys(keys, limit: int = 4) -> str:
    """Pairing keys as short text: ``"1-5, 7"``; ``"100_1, 100_2, ... (41 in all)"`` for
    several numbers per name; names for names without a number."""
    keys = sorted(keys, key=lambda k: tuple(natural_key(str(part)) for part in k))
    if not keys:
        return "none"
    if all(len(k) == 1 and isinstance(k[0], int) for k in keys):
        parts = _runs([k[0] for k in keys])
    else:
        parts = ["_".join(str(part) for part in k) for k in keys]
    if len(parts) <= limit:
        return ", ".join(parts)
    return f"{', '.join(parts[: limit - 1])}, ..., {parts[-1]} ({len(keys)} in all)"


def pair_by_number(
    names_a: Sequence[str],
    names_b: Sequence[str],
    source_a="images",
    source_b="labels",
    kinds: tuple[str, str] = ("images", "labels"),
) -> Pairing:
    """Pair two lists of file stems by the numbers at the end of their names.

    ``images.010`` pairs with ``mitos_3D.010`` and ``Hela_Data_Slice_100_Sample_7`` with
    ``Hela_Label_Slice100_Sample_7``: the key is the last *k* numbers of each name, where
    *k* is the fewest numbers any name carries (names without a number pair by equal stem).
    One side may hold numbers the other lacks (predictions for some of the labelled slices):
    those names are returned unpaired, for a warning.

    Raises
    ------
    PairingError
        When nothing pairs, when two names of a side carry the same number, or when both
        sides hold numbers the other lacks (``slice_0000...`` against ``mask_0001...``: the
        numberings differ, and pairing by number would shift slices). The message (naming
        ``source_b``) lists both sides' numbers, called ``kinds``, and offers pairing by order.
    """
    counts = [len(numbers_in(n)) for n in list(names_a) + list(names_b)]
    n_numbers = min(counts) if counts else 0
    keys_a, keys_b = _keys(names_a, n_numbers, source_a), _keys(names_b, n_numbers, source_b)
    pairs = sorted((i, keys_b[key]) for key, i in keys_a.items() if key in keys_b)
    both = f"{kinds[0]} {describe_keys(keys_a)}, {kinds[1]} {describe_keys(keys_b)}"
    if not pairs:
        example = f"e.g. {names_a[0] if names_a else '-'!r} vs {names_b[0] if names_b else '-'!r}"
        raise PairingError(
            source_b, f"no file pairs with {source_a} by the number in its name ({both}; {example}); {ORDER_HINT}"
        )
    paired_b = {j for _, j in pairs}
    unpaired_a = [names_a[i] for key, i in keys_a.items() if key not in keys_b]
    unpaired_b = [names_b[j] for j in range(len(names_b)) if j not in paired_b]
    if unpaired_a and unpaired_b:
        raise PairingError(
            source_b,
            f"the numbers in the names do not line up one to one with {source_a} ({both}), "
            f"so pairing by number would shift or drop slices; {ORDER_HINT}",
        )
    return Pairing(pairs=pairs, unpaired_a=unpaired_a, unpaired_b=unpaired_b)


def pair_by_order(
    names_a: Sequence[str],
    names_b: Sequence[str],
    source_a="images",
    source_b="labels",
    kinds: tuple[str, str] = ("images", "labels"),
) -> Pairing:
    """Pair the *n*-th name of each side in natural order (``img2`` before ``img10``).

    Raises :class:`PairingError` (naming ``source_b``) when the two sides differ in length.
    """
    if len(names_a) != len(names_b):
        raise PairingError(
            source_b,
            f"pairing by order needs as many {kinds[1]} as {kinds[0]}: "
            f"{len(names_b)} here, {len(names_a)} in {source_a}",
        )
    order_a = sorted(range(len(names_a)), key=lambda i: natural_key(names_a[i]))
    order_b = sorted(range(len(names_b)), key=lambda j: natural_key(names_b[j]))
    return Pairing(pairs=sorted(zip(order_a, order_b, strict=True)), unpaired_a=[], unpaired_b=[])


def pair_slices(
    names_a: Sequence[str],
    names_b: Sequence[str],
    source_a="images",
    source_b="labels",
    by: str = "number",
    kinds: tuple[str, str] = ("images", "labels"),
) -> Pairing:
    """Pair slices ``by`` ``"number"`` (:func:`pair_by_number`) or ``"order"`` (:func:`pair_by_order`)."""
    if by == "number":
        return pair_by_number(names_a, names_b, source_a, source_b, kinds)
    if by == "order":
        return pair_by_order(names_a, names_b, source_a, source_b, kinds)
    raise InputError(None, f"pair by {by!r}: choose one of {', '.join(PAIR_BY)}")


def unpaired_warning(names: Sequence[str], kind: str, source=None) -> str:
    """``"<source>: 3 label slice(s) without a partner, skipped: a, b, c"``, the warning of evaluate and train."""
    text = f"{len(names)} {kind} slice(s) without a partner, skipped: {short_list(names, 5)}"
    return f"{source}: {text}" if source else text


def check_volume_image(volume, sample: int = 3) -> None:
    """Refuse a stack whose sampled slices are all binary: it is a mask stack, not EM images.

    A constant stack (one value everywhere, e.g. blank slices) is not a mask and passes: it is
    predicted as background. Raises :class:`~.errors.ImageContentError` naming the values."""
    slices = sample_slices(volume, sample)
    values = [distinct_values(s, limit=3) for s in slices]
    if all(len(v) <= 2 for v in values) and any(len(v) == 2 for v in values):
        check_image(next(s for s, v in zip(slices, values, strict=True) if len(v) == 2), volume.source)
