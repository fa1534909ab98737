"""What the PDF report's first page says about each object: how it was predicted (read from a
provenance record of the command line or of the app) and what was found (core.measure).

Two provenance shapes are read, under ``parameters`` (or at the top level):

- ``emviewer predict``: ``mode``, ``tta``, ``server`` (online) and ``models`` =
  ``{object: [{name, threshold, sha256, ...}]}`` (:func:`emviewer.core.predict.models_record`),
  or ``{object: [name]}`` / ``"server defaults"`` online;
- the app's export: ``predictions`` = ``{object: {mode, tta, where, models: [...]}}`` and
  ``edited_slices`` = ``{object: [0-based z]}``.

Anything missing is "not recorded"; nothing here raises on an unexpected shape.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .component_sizes import component_sizes
from .measure import usable_pixel_size
from .volume import Volume

NOT_RECORDED = "not recorded"
#: Rows of one slice labelled at a time for the report (one 20000-pixel-wide band: about 160 MB).
BAND_ROWS = 2048


def parameters_of(provenance: Mapping | None) -> Mapping:
    """The parameters of a :func:`~emviewer.core.provenance.provenance` record (or the record itself)."""
    provenance = provenance or {}
    inner = provenance.get("parameters")
    return inner if isinstance(inner, Mapping) else provenance


def _get(mapping, key):
    return mapping.get(key) if isinstance(mapping, Mapping) else None


def _text(value) -> str:
    if value is None or value == "" or value == []:
        return NOT_RECORDED
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def slice_ranges(indices: Iterable[int], base: int = 1) -> str:
    """``[0, 1, 2, 5]`` -> ``"1-3, 6"`` (``base`` 1: numbered from 1, as the app shows them)."""
    numbers = sorted({int(z) + base for z in indices})
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _models(params: Mapping, run: Mapping | None, key: str) -> list:
    models = run.get("models") if isinstance(run, Mapping) and "models" in run else _get(params.get("models"), key)
    if isinstance(models, str):  # "server defaults"
        return [models]
    return list(models) if isinstance(models, (list, tuple)) else []


def _where(params: Mapping, run: Mapping | None) -> str:
    where = _get(run, "where") or params.get("server")
    if where is None and (params.get("command") == "predict" or params.get("predicted_by")):
        where = "this computer"
    return _text(where)


@dataclass
class ObjectRun:
    """How one object's masks were predicted, as text for the report."""

    models: str
    sha256: str
    mode: str
    tta: str
    threshold: str
    where: str
    edited: str

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("model", self.models),
            ("SHA-256", self.sha256),
            ("mode", self.mode),
            ("test-time augmentation", self.tta),
            ("threshold", self.threshold),
            ("run on", self.where),
            ("edited by hand", self.edited),
        ]


def object_run(provenance: Mapping | None, key: str) -> ObjectRun:
    """Read how object ``key`` was predicted from ``provenance`` (either shape, see the module)."""
    params = parameters_of(provenance)
    run = _get(params.get("predictions"), key)
    run = run if isinstance(run, Mapping) else None
    models = _models(params, run, key)
    names = [str(m.get("name") or "?") if isinstance(m, Mapping) else str(m) for m in models]
    hashes = [str(m.get("sha256"))[:12] for m in models if isinstance(m, Mapping) and m.get("sha256")]
    thresholds = [f"{m['threshold']:g}" for m in models if isinstance(_get(m, "threshold"), (int, float))]
    if not thresholds and isinstance(params.get("threshold"), (int, float)):
        thresholds = [f"{params['threshold']:g}"]
    where = _where(params, run)
    if not names and run is not None and run.get("models") == [] and where not in (NOT_RECORDED, "this computer"):
        names = ["the server's defaults"]  # online: the server picks its models
    edited = _get(params.get("edited_slices"), key)
    if isinstance(edited, (list, tuple)):
        edited_text = f"slices {slice_ranges(edited)}" if edited else "none"
    else:
        edited_text = "none" if run is not None and params.get("edited_slices") is not None else NOT_RECORDED
    return ObjectRun(
        models=", ".join(names) or NOT_RECORDED,
        sha256=", ".join(hashes) or NOT_RECORDED,
        mode=_text(_get(run, "mode") if run is not None else params.get("mode")),
        tta=_text(_get(run, "tta") if run is not None and "tta" in run else params.get("tta")),
        threshold=", ".join(thresholds) or NOT_RECORDED,
        where=where,
        edited=edited_text,
    )


@dataclass
class ObjectCounts:
    """What the masks of one object hold: the number of objects (3D connected components, full
    connectivity; 2D for one slice), the share of object voxels and each object's size."""

    count: int
    fraction: float
    fraction_name: str  # "area fraction" (2D) or "volume fraction" (3D)
    sizes: np.ndarray
    size_name: str  # e.g. "volume (µm³)"

    def rows(self) -> list[tuple[str, str]]:
        rows = [("objects", str(self.count)), (self.fraction_name, f"{100 * self.fraction:.2f} %")]
        if len(self.sizes):
            rows.append((f"median {self.size_name}", f"{np.median(self.sizes):.3g}"))
        return rows


def _pieces(mask: Volume) -> Iterator[np.ndarray]:
    """A mask stack a slice at a time, or one slice a band of rows at a time (labelling a
    whole 20000 x 15000 slice would take several GB)."""
    if mask.shape[0] > 1:
        yield from (plane[None] for plane in mask.iter_slices())
        return
    height = mask.shape[1]  # each band read on its own: the slice is never whole in memory
    yield from (mask.rows(0, y, min(height, y + BAND_ROWS)) for y in range(0, height, BAND_ROWS))


def object_counts(mask: Volume, pixel_size: Sequence | None) -> ObjectCounts:
    """Count and size the objects of one ``(Z, Y, X)`` 0/255 mask stack, labelled a piece at a
    time (:func:`~.component_sizes.component_sizes`): the memory of one slice, whatever the stack.
    Sizes are in µm³ (µm² for one slice) when ``pixel_size`` (z, y, x nm) allows, else in voxels."""
    dims = 2 if mask.shape[0] == 1 else 3
    voxels = component_sizes(_pieces(mask))
    fraction = float(voxels.sum()) / max(1, int(np.prod(mask.shape)))
    with warnings.catch_warnings():  # an unknown z spacing gives sizes in voxels, which the unit says
        warnings.simplefilter("ignore")
        spacing = usable_pixel_size(tuple(pixel_size) if pixel_size else None, dims)
    what = "volume" if dims == 3 else "area"
    if spacing is None:
        return ObjectCounts(
            len(voxels), fraction, f"{what} fraction", voxels, f"{what} (voxels)" if dims == 3 else "area (pixels)"
        )
    scale = float(np.prod(np.asarray(spacing)[-dims:] / 1000.0))  # nm -> µm
    unit = "µm³" if dims == 3 else "µm²"
    return ObjectCounts(len(voxels), fraction, f"{what} fraction", voxels * scale, f"{what} ({unit})")


def flat_items(provenance: Mapping | None, skip: Sequence[str] = ()) -> list[tuple[str, str]]:
    """``provenance`` as ``(dotted key, text)`` pairs; lists of slice numbers as ranges, long values cut."""
    items: list[tuple[str, str]] = []

    def walk(mapping: Mapping, prefix: str) -> None:
        for key, value in mapping.items():
            name = f"{prefix}{key}"
            if name in skip:
                continue
            if isinstance(value, Mapping) and value:
                walk(value, name + ".")
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
                items.append((name, slice_ranges(value, base=0) + " (0-based)"))
            else:
                text = value if isinstance(value, str) else json.dumps(value, default=str)
                items.append((name, text if len(text) <= 300 else text[:297] + "..."))

    walk(provenance or {}, "")
    return items
