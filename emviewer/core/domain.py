"""Is this image like the model's training data? A one-line answer for the biologist.

A model sees any stack at the contrast it was trained on (:mod:`.intensity`), but contrast is
not all a microscope changes: the pixel size, the noise and the staining change the *texture*
the model sees, and a model far from its training data turns uncertain. The card of each model
keeps a few statistics of its training and validation slices, as the model saw them
(:func:`training_domain`, key ``"training_domain"``); the first slice a user predicts is
compared with them (:func:`domain_warning`), at the cost of one slice's FFTs, no model call.

The statistics of one slice (:func:`slice_statistics`):

``intensity``
    Quantiles (:data:`QUANTILES`) of the model input: the grey-level distribution between the
    tissue's 1st and 99th percentiles, which the normalisation aligns (other staining shows here).
``texture``
    log10 of the mean power in four bands of the radially averaged power spectrum, wavelengths
    16-32, 8-16, 4-8 and 2-4 pixels (:data:`BAND_EDGES`), averaged over 64-pixel tiles under a
    Hann window (Welch's method: slices and 64-pixel patches are measured alike). A finer pixel
    size, another microscope's noise or a blurred export move power between these bands.
``uncertain``
    The share of pixels whose probability lies in :data:`UNCERTAIN` (neither object nor background).

A slice differs when one statistic lies more than :data:`LIMIT` spreads from the training
mean, the spread being the standard deviation over the model's own slices (at least the
statistic's :data:`FLOORS` value): so each model's limit follows its own data's variety.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.fft

from .intensity import model_input as scaled_for_model
from .intensity import tissue_units
from .zoom import zoomed

if TYPE_CHECKING:
    from .intensity_stats import TissueStats
    from .models.loading import LoadedModel
    from .volume import Volume

#: Version of the statistics below; a card with another version gives no warning.
VERSION = 1
#: Quantiles of the model input recorded as the grey-level distribution.
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: Radial frequency band edges of the texture bands, cycles per pixel (wavelengths 32, 16, 8, 4, 2 px).
BAND_EDGES = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2)
#: Probabilities counted as uncertain: ``low < p < high``.
UNCERTAIN = (0.2, 0.8)
#: Smallest spread of each statistic (model-input units; decades of power; share of pixels),
#: so that a model trained on very uniform slices does not flag every small change.
FLOORS = {"intensity": 0.05, "texture": 0.1, "uncertain": 0.02}
#: A slice differs when a statistic lies further than this many spreads from the training mean.
LIMIT = 4.0
#: Side of the Welch tiles, pixels; slices smaller than this have no texture statistic.
TILE = 64
#: Larger slices are measured on their central square of this side (enough tiles, little time).
SAMPLE = 1024
#: Where the biologist is pointed when a slice differs.
ADAPT_HINT = "see 'emviewer adapt' or Train > Adapt model to my corrections"


def _central(image: np.ndarray, side: int = SAMPLE) -> np.ndarray:
    """The central ``side`` x ``side`` part of a ``(Y, X)`` array (all of it when smaller)."""
    y0, x0 = max(0, (image.shape[0] - side) // 2), max(0, (image.shape[1] - side) // 2)
    return image[y0 : y0 + side, x0 : x0 + side]


def _band_masks() -> list[np.ndarray]:
    frequency = np.fft.fftfreq(TILE)
    radius = np.hypot(frequency[:, None], frequency[None, :])
    edges = list(BAND_EDGES[:-1]) + [np.inf]  # the top band includes the Nyquist corners
    return [(radius >= low) & (radius < high) for low, high in zip(edges[:-1], edges[1:], strict=True)]


def texture_bands(image: np.ndarray) -> list[float] | None:
    """log10 mean power per band of :data:`BAND_EDGES` of a ``(Y, X)`` float image, or None
    when it is smaller than one :data:`TILE`. Power is per pixel, in (image units)^2."""
    rows, cols = image.shape[0] // TILE, image.shape[1] // TILE
    if rows == 0 or cols == 0:
        return None
    tiles = image[: rows * TILE, : cols * TILE].reshape(rows, TILE, cols, TILE).swapaxes(1, 2)
    tiles = tiles.reshape(-1, TILE, TILE).astype(np.float32)
    tiles = tiles - tiles.mean(axis=(1, 2), keepdims=True)
    hann = np.hanning(TILE).astype(np.float32)
    # scipy's FFT, not NumPy's: NumPy's first transform in a process took 0.37 s (scipy's 7 ms),
    # paid by every prediction run for its domain check.
    spectrum = np.abs(scipy.fft.fft2(tiles * np.outer(hann, hann))) ** 2
    power = spectrum.mean(axis=0) / TILE**2
    return [float(np.log10(power[mask].mean() + 1e-12)) for mask in _band_masks()]


def slice_statistics(model_input: np.ndarray, probability: np.ndarray | None = None) -> dict[str, list[float]]:
    """The statistics of one slice (see the module's docstring).

    Parameters
    ----------
    model_input
        ``(Y, X)`` float32 in [0, 1]: the slice as the model gets it (:func:`~.intensity.model_input`).
    probability
        ``(Y, X)`` float32 in [0, 1], the model's probabilities on it, or None (no ``uncertain``).

    Returns
    -------
    dict
        ``{"intensity": [5 quantiles], "texture": [4 log10 powers], "uncertain": [share]}``;
        ``texture`` is left out for slices under 64 pixels. Slices over 1024 pixels are
        measured on their central 1024 x 1024 part.
    """
    image = _central(np.asarray(model_input, np.float32))
    stats = {"intensity": [float(q) for q in np.quantile(image, QUANTILES)]}
    bands = texture_bands(image)
    if bands is not None:
        stats["texture"] = bands
    if probability is not None:
        p = _central(np.asarray(probability, np.float32))
        stats["uncertain"] = [float(((p > UNCERTAIN[0]) & (p < UNCERTAIN[1])).mean())]
    return stats


def _summary(per_slice: list[dict[str, list[float]]]) -> dict[str, dict[str, list[float]]]:
    """Mean, standard deviation, min and max of each statistic over slices."""
    summary = {}
    for name in FLOORS:
        values = np.array([s[name] for s in per_slice if name in s], np.float64)
        if len(values):
            summary[name] = {
                key: [round(float(v), 5) for v in fn(values, axis=0)]
                for key, fn in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max))
            }
    return summary


def training_domain(
    slices: Sequence[np.ndarray],
    probabilities: Sequence[np.ndarray],
    pixel_size_nm: float | None = None,
    description: str = "",
    groups: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Statistics of a model's training / validation data, for its card's ``"training_domain"``.

    Parameters
    ----------
    slices
        Model inputs, each ``(Y, X)`` float32 in [0, 1] as the model got them (any size; 64-pixel
        patches are fine, but a mosaic of the patches of one slice measures that slice better).
    probabilities
        The model's probabilities on each slice, ``(Y, X)`` float32 in [0, 1], same shapes,
        calibrated so that its threshold is 0.5 (:func:`~.predict.calibrate`), as prediction
        yields them.
    pixel_size_nm
        The training images' pixel size in nm, when known (kept as information).
    description
        Where the data came from, one line, e.g. ``"HeLa SBF-SEM, 10 nm"``.
    groups
        The data set of each slice (e.g. ``"cdeep3m"``, ``"Lucchi++"``), when the model was
        trained on several unlike ones: each is summarised apart, and a slice is in the domain
        when it is like any of them. None: all slices are one data set.

    Returns
    -------
    dict
        JSON-able: ``version``, ``description``, ``pixel_size_nm``, ``slices`` (count), the
        settings (``quantiles``, ``band_edges_cycles_per_px``, ``uncertain_between``) and
        ``sources``: per data set its ``name``, ``slices`` and ``statistics`` (per statistic the
        ``mean``, ``std``, ``min`` and ``max`` over its slices).

    Raises
    ------
    ValueError
        When no slice is given, or slices, probabilities and groups differ in number or shape.
    """
    groups = list(groups) if groups is not None else ["training data"] * len(slices)
    if not slices or not len(slices) == len(probabilities) == len(groups):
        raise ValueError(
            f"training_domain needs slices with one probability map (and group) each: {len(slices)} slices, "
            f"{len(probabilities)} probability maps, {len(groups)} groups"
        )
    per_group: dict[str, list[dict[str, list[float]]]] = {}
    for image, probability, group in zip(slices, probabilities, groups, strict=True):
        if np.shape(image) != np.shape(probability):
            raise ValueError(f"slice {np.shape(image)} and probability {np.shape(probability)} differ in shape")
        per_group.setdefault(group, []).append(slice_statistics(image, probability))
    return {
        "version": VERSION,
        "description": description,
        "pixel_size_nm": pixel_size_nm,
        "slices": len(slices),
        "quantiles": list(QUANTILES),
        "band_edges_cycles_per_px": [round(e, 5) for e in BAND_EDGES],
        "uncertain_between": list(UNCERTAIN),
        "sources": [
            {"name": name, "slices": len(stats), "statistics": _summary(stats)} for name, stats in per_group.items()
        ],
    }


def source_distances(source: dict, stats: dict[str, list[float]]) -> dict[str, list[float]]:
    """Signed distance of each statistic from one source's mean, in its spreads (std, at least
    the :data:`FLOORS` value). Only statistics both sides have are compared; ``uncertain``
    counts only above the mean (fewer uncertain pixels are no concern)."""
    distances = {}
    for name, recorded in source.get("statistics", {}).items():
        if name not in stats or name not in FLOORS:
            continue
        mean, std = np.asarray(recorded["mean"]), np.asarray(recorded["std"])
        signed = (np.asarray(stats[name]) - mean) / np.maximum(std, FLOORS[name])
        distances[name] = [float(d) for d in (np.maximum(signed, 0) if name == "uncertain" else signed)]
    return distances


def nearest_source(domain: dict, stats: dict[str, list[float]]) -> tuple[dict, dict[str, list[float]]]:
    """The training source a slice's statistics are most like (smallest largest distance), and
    the signed distances to it (see :func:`source_distances`)."""

    def worst(distances: dict[str, list[float]]) -> float:
        return max((abs(d) for values in distances.values() for d in values), default=0.0)

    measured = [(source, source_distances(source, stats)) for source in domain["sources"]]
    return min(measured, key=lambda pair: worst(pair[1]))


def _texture_words(signed: list[float]) -> str:
    """Finer or coarser, by the band that differs most: more power at short wavelengths (2-8 px)
    or less at long ones (8-32 px) is finer texture; the opposite is coarser."""
    band = int(np.argmax(np.abs(signed)))
    finer = (signed[band] > 0) == (band >= len(signed) // 2)
    if finer:
        return "texture finer or grainier than the training data (smaller pixel size, or more noise?)"
    return "texture coarser or smoother than the training data (larger pixel size, or a blurred image?)"


def _differences(domain: dict, stats: dict[str, list[float]], limit: float) -> list[str]:
    """What differs from the nearest training source, in words, most different first."""
    source, distances = nearest_source(domain, stats)
    found = []
    for name, signed in distances.items():
        worst = max(abs(d) for d in signed)
        if worst <= limit:
            continue
        if name == "texture":
            words = _texture_words(signed)
        elif name == "intensity":
            words = "grey levels distributed unlike the training data (other staining or contrast?)"
        else:
            usual = source["statistics"]["uncertain"]["mean"][0]
            words = f"many uncertain pixels ({stats[name][0]:.0%}; {usual:.0%} on the training data)"
        found.append((worst, words))
    return [words for _, words in sorted(found, reverse=True)]


def domain_warning(
    domain: dict | None, model_input: np.ndarray, probability: np.ndarray, model_name: str, limit: float = LIMIT
) -> str | None:
    """One line (no newline) when a slice looks unlike the model's training data, else None.

    Parameters
    ----------
    domain
        The card's ``"training_domain"`` (:func:`training_domain`); None or ``{}`` (an old
        card) or another version gives None.
    model_input
        ``(Y, X)`` float32 in [0, 1]: the slice as the model gets it.
    probability
        ``(Y, X)`` float32 in [0, 1]: the model's probabilities on it (same shape).
    model_name
        Named at the start of the line.
    limit
        Distance, in spreads of the training slices, beyond which a statistic differs.

    Returns
    -------
    str or None
        ``"<model>: this image looks unlike its training data (<description>): <what differs>;
        see 'emviewer adapt' or Train > Adapt model to my corrections"``.
    """
    if not domain or domain.get("version") != VERSION or not domain.get("sources"):
        return None
    differences = _differences(domain, slice_statistics(model_input, probability), limit)
    if not differences:
        return None
    trained_on = f" ({domain['description']})" if domain.get("description") else ""
    what = "; ".join(differences)
    line = f"{model_name}: this image looks unlike its training data{trained_on}: {what}; {ADAPT_HINT}"
    return " ".join(line.split())  # one line, whatever the description held


def prediction_warnings(
    models: Mapping[str, Sequence[LoadedModel]],
    volume: Volume,
    z: int,
    stats: TissueStats,
    probabilities: Mapping[str, np.ndarray],
) -> list[str]:
    """At most one :func:`domain_warning` line per object for one predicted slice.

    Parameters
    ----------
    models
        Object -> its models (an ensemble's members are asked in turn; the first line counts).
    volume, z
        The stack predicted and the slice's index (read again only when a card has a domain;
        its central 1024 x 1024 is measured).
    stats
        The stack's tissue statistics, as the prediction normalised it (:func:`~.intensity.tissue_units`).
    probabilities
        Object -> ``(Y, X)`` float32 probabilities of that slice as prediction yields them
        (calibrated: each model's threshold at 0.5), same shape as the slice.

    Returns
    -------
    list of str
        One line per object whose slice looks unlike a model's training data. Models without
        a ``training_domain`` (old cards), or with one that cannot be read, give none.
    """
    if not any(m.card.training_domain for ms in models.values() for m in ms):
        return []  # old cards: not even the slice is scaled
    units = tissue_units(_central(volume.slice(z)), stats)
    lines = []
    for obj, members in models.items():
        probability = _central(probabilities[obj])
        for model in members:
            try:
                seen = scaled_for_model(zoomed(units, model.card.input_zoom), model.reference)  # as the model sees it
                line = domain_warning(model.card.training_domain, seen, probability, model.name)
            except (KeyError, TypeError, ValueError, IndexError):  # a hand-edited card: no warning, no failure
                line = None
            if line:
                lines.append(line)
                break
    return lines
