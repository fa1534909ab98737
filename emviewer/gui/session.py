"""The app's one state object: the open stack, the predicted masks and what is shown.

Widgets receive the session, observe its signals and change it only through its methods
(one direction of truth), so the viewer, the object panel and the export dialog agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping

import numpy as np
from PySide6.QtCore import QObject, Signal

from ..core.intensity_stats import TissueStats, sample_slices, tissue_stats
from ..core.objects import OBJECTS
from ..core.overlay import DISPLAY_PERCENTILES
from ..core.predict import SliceResult
from ..core.volume import Volume
from .stored_masks import StoredMasks


class Session(QObject):
    """Open volume, per-object probabilities/masks, visibility, opacity and the current slice.

    Masks are kept per slice as they arrive (``{object: {z: (Y, X) bool}}``), so a stack
    predicted slice by slice shows each slice as soon as it is done. A run replaces only the
    objects and slices it finishes: the masks of other objects, and those of slices a failed
    or cancelled run did not reach, stay as they were. ``unsaved`` names the objects whose
    results are not saved yet (a result arrived since the last export that held them).
    """

    volumeChanged = Signal()  # a new stack was opened (or closed)
    sliceChanged = Signal(int)
    masksChanged = Signal(int)  # z whose masks changed; -1 for all
    displayChanged = Signal()  # visibility, opacity or contrast changed
    pixelSizeChanged = Signal()  # the voxel size was set by hand

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.volume: Volume | None = None
        self.z = 0
        self.levels: tuple[float, float] = (0.0, 255.0)
        self.tissue: TissueStats | None = None  # display statistics of the open stack
        self.masks: dict[str, MutableMapping[int, np.ndarray]] = {}  # a dict, or StoredMasks read from disk
        self.probabilities: dict[str, dict[int, np.ndarray]] = {}
        self.unsaved: set[str] = set()
        self.edited: dict[str, set[int]] = {}  # object -> slices (0-based) changed by hand
        self._unedited: dict[tuple[str, int], np.ndarray | None] = {}  # each edited slice's mask before its edits
        self.runs: dict[str, dict] = {}  # object -> how its latest masks were predicted (provenance)
        self._run = 0  # the current prediction run; results of an older one are ignored
        self._kept: set[tuple[str, int]] = set()  # (object, slice) whose masks the current run leaves as they are
        self.visible = dict.fromkeys(OBJECTS, True)
        self.opacity = dict.fromkeys(OBJECTS, 0.45)
        self.colours: dict[str, tuple[int, int, int]] = {key: kind.colour for key, kind in OBJECTS.items()}

    # ------------------------------------------------------------------ volume

    def open(self, volume: Volume) -> None:
        """Show a new stack; earlier masks are dropped (the caller asked the user first)."""
        if self.volume is not None:
            self.volume.close()
        self.volume = volume
        self.masks, self.probabilities, self.unsaved = {}, {}, set()
        self.edited, self.runs, self._unedited = {}, {}, {}
        self._run += 1  # a run still stopping belongs to the stack that was open before
        self._kept = set()
        self.z = 0
        self.levels = self._stack_levels()
        self.volumeChanged.emit()
        self.sliceChanged.emit(0)

    def current_slice(self) -> np.ndarray | None:
        return None if self.volume is None else self.volume.slice(self.z)

    def set_slice(self, z: int) -> None:
        if self.volume is None:
            return
        z = int(np.clip(z, 0, len(self.volume) - 1))
        if z != self.z:
            self.z = z
            self.sliceChanged.emit(z)

    def auto_levels(self) -> None:
        """Contrast limits from the stack's percentiles (what opening the stack sets)."""
        if self.volume is not None:
            self.set_levels(*self._stack_levels())

    def _stack_levels(self) -> tuple[float, float]:
        # display only: the exact data rectangle (columns read of every sampled slice) is not needed
        self.tissue = tissue_stats(sample_slices(self.volume), DISPLAY_PERCENTILES, trim=False)
        return self.tissue.low, self.tissue.high

    def set_pixel_size(self, pixel_size: tuple[float | None, float, float] | None) -> None:
        """Voxel size ``(z, y, x)`` in nm (``z`` may be None), or None: uncalibrated."""
        if self.volume is None:
            return
        if pixel_size is None:
            self.volume.pixel_size = None
        else:
            z, y, x = pixel_size
            self.volume.pixel_size = (None if z is None else float(z), float(y), float(x))
        self.volume.metadata["pixel_size_from"] = "set in the app"
        self.pixelSizeChanged.emit()

    def set_levels(self, low: float, high: float) -> None:
        self.levels = (float(low), float(max(high, low + 1e-6)))
        self.displayChanged.emit()

    # ------------------------------------------------------------------ objects

    def begin_run(self, keep: Iterable[tuple[str, int]] = ()) -> int:
        """Start a prediction run on the open stack; pass the returned id to :meth:`set_result`.

        ``keep``: ``(object, slice)`` pairs (0-based slices, e.g. :meth:`corrected_slices`) whose
        masks this run's results leave as they are; their probabilities are still replaced."""
        self._run += 1
        self._kept = set(keep)
        return self._run

    def corrected_slices(self, objects: Iterable[str]) -> dict[str, list[int]]:
        """The slices (0-based, sorted) of each of ``objects`` whose mask was changed by hand;
        objects with none are left out."""
        return {key: sorted(self.edited[key]) for key in objects if self.edited.get(key)}

    def set_result(
        self, result: SliceResult, run: int | None = None, box: tuple[int, int, int, int] | None = None
    ) -> bool:
        """Store one finished slice: its masks as the core decided them (:meth:`SliceResult.masks`),
        and its probabilities (``(Y, X)`` float32 in [0, 1]) for export.

        Only the objects in ``result`` and its slice are replaced, and of a run started with
        ``keep`` not the masks kept (their hand edits stay). A result of a run other than the
        latest :meth:`begin_run` (``run`` given: e.g. one still stopping when another stack was
        opened) is ignored; returns whether the result was stored.

        ``box`` ``(y0, y1, x0, x1)``: the result covers only that region of its slice ("Predict
        region in view"). Its masks replace the slice's there and the rest keeps its masks (none:
        background); the slice's probabilities are dropped, as they would cover only the region.
        """
        if run is not None and run != self._run:
            return False
        z, masks = result.index, result.masks()
        for key, probability in result.probabilities.items():
            if box is None:
                self.probabilities.setdefault(key, {})[z] = probability
            else:
                self.probabilities.get(key, {}).pop(z, None)
            self.unsaved.add(key)
            if run is not None and (key, z) in self._kept:
                continue
            per_slice = self.masks.setdefault(key, {})
            if box is not None:
                masks[key] = self._pasted(per_slice.get(z), masks[key], box)
            per_slice[z] = masks[key]
            self.edited.get(key, set()).discard(z)  # predicted anew: the hand edits of this slice are gone
            self._unedited.pop((key, z), None)
        self.masksChanged.emit(z)
        return True

    def _pasted(self, mask: np.ndarray | None, region: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """A new ``(Y, X)`` mask: ``mask`` (or background) with ``region`` in ``box``."""
        assert self.volume is not None
        whole = np.zeros(self.volume.shape[1:], bool) if mask is None else np.array(mask, bool)
        y0, y1, x0, x1 = box
        whole[y0:y1, x0:x1] = region
        return whole

    def show_stored_masks(self, masks: Mapping[str, Volume], slices: Iterable[int], record: dict | None = None) -> None:
        """Masks saved earlier become those of their objects: each a ``(Z, Y, X)`` stack (non-zero
        is object) the open stack's shape, e.g. an OME-Zarr prediction store
        (:func:`~emviewer.core.prediction_zarr.open_store_masks`), read a slice at a time as shown.
        ``slices`` (0-based) hold masks, the others none. They replace the objects' earlier
        masks, probabilities and edits, and count as saved; ``record`` is kept as their provenance.

        Raises ``ValueError`` (before anything changes) for a stack of another shape."""
        if self.volume is None:
            raise RuntimeError("no stack is open")
        for volume in masks.values():
            if volume.shape != self.volume.shape:
                shapes = (" x ".join(map(str, s)) for s in (volume.shape, self.volume.shape))
                raise ValueError(f"{volume.source}: the masks are {next(shapes)}, the open stack {next(shapes)}")
        chosen = set(slices)
        for key, volume in masks.items():
            self.masks[key] = StoredMasks(volume, chosen)
            self.probabilities.pop(key, None)
            self.unsaved.discard(key)
            self.edited.pop(key, None)
            self._unedited = {k: v for k, v in self._unedited.items() if k[0] != key}
            if record is not None:
                self.runs[key] = record
        self.masksChanged.emit(-1)

    def record_run(self, objects: Iterable[str], record: dict) -> None:
        """How the masks of ``objects`` are being predicted (models, mode, test-time augmentation,
        threshold), kept for the provenance of exports."""
        for key in objects:
            self.runs[key] = record

    def replace_mask(self, key: str, z: int, mask: np.ndarray) -> None:
        """A hand edit: slice ``z`` (0-based) of object ``key`` becomes ``mask`` (``(Y, X)`` bool, the
        slice's shape). The slice is marked edited and the object unsaved; its probabilities are
        kept as predicted (an export lists the edited slices in its provenance). A mask equal to
        the one before the slice's first edit (e.g. every stroke undone) is that mask again: the
        slice is no longer edited, and a slice that had no mask has none again."""
        if self.volume is None:
            raise RuntimeError("no stack is open")
        mask = np.asarray(mask, bool)
        if mask.shape != self.volume.shape[1:]:
            raise ValueError(f"mask shape {mask.shape} differs from the slice shape {self.volume.shape[1:]}")
        planes, edited = self.masks.setdefault(key, {}), self.edited.setdefault(key, set())
        if z not in edited:
            self._unedited[(key, z)] = planes.get(z)
        before = self._unedited[(key, z)]
        if (before is None and not mask.any()) or (before is not None and np.array_equal(before, mask)):
            del self._unedited[(key, z)]
            edited.discard(z)
            if before is None:
                planes.pop(z, None)
            else:
                planes[z] = before
        else:
            planes[z] = mask
            edited.add(z)
        self.unsaved.add(key)
        self.masksChanged.emit(z)

    def mask_or_empty(self, key: str, z: int) -> np.ndarray:
        """Object ``key``'s mask of slice ``z`` (a copy), or an empty ``(Y, X)`` bool mask."""
        if self.volume is None:
            raise RuntimeError("no stack is open")
        mask = self.masks.get(key, {}).get(z)
        return np.zeros(self.volume.shape[1:], bool) if mask is None else mask.copy()

    def set_colour(self, key: str, colour: tuple[int, int, int]) -> None:
        """Overlay colour of object ``key`` as RGB 0-255 (shown and exported)."""
        self.colours[key] = tuple(int(np.clip(c, 0, 255)) for c in colour)  # type: ignore[assignment]
        self.displayChanged.emit()

    def mark_saved(self, objects: Iterable[str], slices: Iterable[int]) -> None:
        """An export wrote ``objects`` on ``slices`` (0-based): those whose every predicted slice
        is among them are saved."""
        written = set(slices)
        for key in objects:
            if set(self.masks.get(key, {})) <= written:
                self.unsaved.discard(key)

    def clear_masks(self) -> None:
        """Forget every mask and probability (nothing is left unsaved)."""
        self.masks, self.probabilities, self.unsaved = {}, {}, set()
        self.edited, self.runs, self._unedited = {}, {}, {}
        self.masksChanged.emit(-1)

    def slice_masks(self, z: int | None = None) -> dict[str, np.ndarray]:
        """Visible objects' masks of slice ``z`` (the current one by default)."""
        z = self.z if z is None else z
        return {k: per_slice[z] for k, per_slice in self.masks.items() if self.visible.get(k, True) and z in per_slice}

    def mask_windows(self, box: tuple[int, int, int, int], step: int) -> dict[str, np.ndarray]:
        """Visible objects' masks of the current slice, rows ``y0:y1:step`` and columns
        ``x0:x1:step`` of ``box`` = ``(y0, y1, x0, x1)`` (as the viewer shows a region): masks
        stored on disk read only that part (see :meth:`StoredMasks.window`)."""
        y0, y1, x0, x1 = box
        windows = {}
        for key, per_slice in self.masks.items():
            if self.visible.get(key, True) and self.z in per_slice:
                if isinstance(per_slice, StoredMasks):
                    windows[key] = per_slice.window(self.z, box, step)
                else:
                    windows[key] = per_slice[self.z][y0:y1:step, x0:x1:step]
        return windows

    def set_visible(self, key: str, visible: bool) -> None:
        self.visible[key] = bool(visible)
        self.displayChanged.emit()

    def set_opacity(self, key: str, opacity: float) -> None:
        self.opacity[key] = float(np.clip(opacity, 0.0, 1.0))
        self.displayChanged.emit()

    def predicted_slices(self, key: str) -> list[int]:
        return sorted(self.masks.get(key, {}))
