"""Predictions written into an OME-Zarr store as they arrive, resumable after a crash.

``emviewer predict INPUT -o OUT.zarr`` writes one OME-Zarr (NGFF 0.4, Zarr v2) image per
object: ``OUT.zarr/<object>`` holds the mask (uint8, 0/255) and, when asked,
``OUT.zarr/<object>_probabilities`` the probabilities (float32 in [0, 1]). Each is a pyramid:
level ``0`` at the input's voxel size, each further level half as many pixels in Y and X
(chunks of 1 x 1024 x 1024), down to a level that fits in 1024 x 1024 for viewing. The
input's voxel size (nm) is in each level's ``coordinateTransformations``; how the run was
made (software, models, mode) is in the root's attributes under ``emviewer``.

A slice is a *block*: its planes of every array and level are written, then a marker
``.emviewer/done/<z>`` is made, so a slice marked done is complete even if the run was
killed at any moment. ``--resume`` reopens the store, checks that it was made by the same
kind of run (input shape, objects, models, mode) and predicts only the slices without a
marker. Until every slice is done the root says ``"complete": false``; a store that is not
one of ours is never written to.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .bands import BandResult
from .errors import InputError
from .io.ome_zarr import CHUNK_YX, create_level_array, multiscales_metadata, open_group_for_writing
from .overlay import mask_image
from .predict import SliceResult
from .volume import Volume

#: The root attribute holding the run's record.
RECORD_KEY = "emviewer"
#: Where the per-slice completion markers go, inside the store.
DONE_FOLDER = Path(".emviewer") / "done"
#: Pyramid levels are added until a level fits in this many pixels along Y and X.
OVERVIEW_SIZE = CHUNK_YX


def pyramid_shapes(shape: Sequence[int]) -> list[tuple[int, int, int]]:
    """``(Z, Y, X)`` of each pyramid level: level 0 is ``shape``; each next halves Y and X
    (rounded up) until both are at most :data:`OVERVIEW_SIZE`."""
    z, y, x = (int(n) for n in shape)
    shapes = [(z, y, x)]
    while max(y, x) > OVERVIEW_SIZE:
        y, x = -(-y // 2), -(-x // 2)
        shapes.append((z, y, x))
    return shapes


def downsample(plane: np.ndarray, kind: str) -> np.ndarray:
    """A ``(Y, X)`` plane at half its size (rounded up): masks keep an object pixel where any of
    the 2 x 2 pixels is one (thin membranes stay visible), probabilities take the mean.
    An odd last row or column is repeated, so the border is not darkened."""
    from skimage.measure import block_reduce

    padded = np.pad(plane, [(0, plane.shape[0] % 2), (0, plane.shape[1] % 2)], mode="edge")
    reduced = block_reduce(padded, (2, 2), np.max if kind == "mask" else np.mean)
    return reduced.astype(plane.dtype)


class PredictionStore:
    """An OME-Zarr prediction store being written slice by slice (see the module).

    Parameters
    ----------
    path
        The ``.zarr`` folder. Without ``resume`` an existing finished EMViewer prediction store
        there is replaced; any other existing path is refused.
    objects
        Object keys; each result holds a ``(Y, X)`` probability for each.
    shape
        The input's ``(Z, Y, X)``.
    probabilities
        Also write the probabilities (float32 in [0, 1]).
    record
        How the run is made (JSON-serialisable): kept in the root attributes; on ``resume`` its
        ``models``, ``mode`` and ``tta`` must equal the store's.
    pixel_size
        The input's ``(z, y, x)`` voxel size in nm (``z`` may be None), or None.
    resume
        Continue the store at ``path``: :attr:`done` lists the slices already written.

    Raises
    ------
    InputError
        ``path`` is not an EMViewer prediction store, holds an unfinished run (without
        ``resume``), or was made by a different run (with ``resume``).
    """

    def __init__(
        self,
        path: Path,
        objects: Sequence[str],
        shape: Sequence[int],
        probabilities: bool = False,
        record: Mapping | None = None,
        pixel_size: Sequence[float | None] | None = None,
        resume: bool = False,
    ) -> None:
        self.path, self.objects = Path(path), list(objects)
        self.shape = tuple(int(n) for n in shape)
        self.levels = pyramid_shapes(self.shape)
        self.record = {
            "shape": list(self.shape),
            "objects": self.objects,
            "probabilities": bool(probabilities),
            "complete": False,
            **json.loads(json.dumps(dict(record or {}), default=str)),
        }
        names = [(o, "mask") for o in self.objects] + [(f"{o}_probabilities", "probability") for o in self.objects]
        self._images = names if probabilities else names[: len(self.objects)]
        if resume:
            self._reopen()
        else:
            self._create(pixel_size)
        self.done = self.marked_done()
        self.written: list[Path] = []
        self._open_arrays: list[tuple[str, list]] | None = None  # opened at the first slice

    @classmethod
    def reopen(cls, path: str | Path) -> PredictionStore:
        """The store at ``path`` as its own record describes it (e.g. on a cluster's worker,
        after the client made or checked it). Raises :class:`InputError` as ``resume`` does."""
        path = Path(path)
        record = _read_record(path) if path.exists() else None
        try:
            shape, objects, probabilities = record["shape"], record["objects"], bool(record["probabilities"])  # type: ignore[index]
        except (KeyError, TypeError):
            raise InputError(path, "is not an EMViewer prediction store") from None
        return cls(path, objects, shape, probabilities, record, resume=True)

    def marked_done(self) -> set[int]:
        """The slices (0-based) whose done marker exists now (written by this process or any other)."""
        return _marked_done(self.path)

    # ------------------------------------------------------------------ opening

    def _existing_record(self) -> dict | None:
        """The record of an EMViewer prediction store at ``path``, None when the path is absent;
        raises :class:`InputError` for anything else there."""
        return _read_record(self.path) if self.path.exists() else None

    def _create(self, pixel_size) -> None:
        existing = self._existing_record()
        if existing is not None and not existing.get("complete"):
            raise InputError(
                self.path, "holds an unfinished prediction: add --resume to continue it, or remove it to start again"
            )
        if existing is not None:
            shutil.rmtree(self.path)  # a finished earlier run of ours: replaced, as the other formats are
        root = open_group_for_writing(self.path)
        root.attrs[RECORD_KEY] = self.record
        for name, _kind in self._images:
            group = open_group_for_writing(self.path, name)
            dtype = np.uint8 if name in self.objects else np.float32
            for level, level_shape in enumerate(self.levels):
                create_level_array(group, str(level), level_shape, dtype)
            group.attrs["multiscales"] = multiscales_metadata(name, pixel_size, len(self.levels))
        (self.path / DONE_FOLDER).mkdir(parents=True)

    def _reopen(self) -> None:
        existing = self._existing_record()
        if existing is None:
            raise InputError(self.path, "does not exist: there is nothing to resume (leave out --resume)")
        for key in ("shape", "objects", "probabilities", "models", "mode", "tta"):
            if existing.get(key) != self.record.get(key):
                raise InputError(
                    self.path,
                    f"was made by a different run ({key}: {existing.get(key)!r} there, {self.record.get(key)!r} now);"
                    " resume it with the same input and options, or write to a new store",
                )
        for name, _kind in self._images:  # our own arrays, as we made them: nothing else is written into
            for level, level_shape in enumerate(self.levels):
                _check_array(self.path / name / str(level), level_shape)
        if not (self.path / DONE_FOLDER).is_dir():
            raise InputError(self.path, "lacks its record of finished slices (.emviewer/done); it cannot be resumed")

    # ------------------------------------------------------------------ writing

    def _arrays(self) -> list[tuple[str, list]]:
        import zarr

        root = zarr.open_group(str(self.path), mode="r+")
        return [(kind, [root[f"{name}/{k}"] for k in range(len(self.levels))]) for name, kind in self._images]

    def add(self, result: SliceResult | BandResult) -> None:
        """Write one predicted slice, or one band of rows of it (:mod:`.bands`), into every array
        and level; the slice is marked done after its last band.

        Raises
        ------
        ValueError
            A slice outside the store, of another ``(Y, X)`` shape, or a band that does not
            start on a row every pyramid level can halve to.
        """
        band = BandResult.of(result)
        z, masks, start = band.index, band.masks(), band.start
        if not 0 <= z < self.shape[0]:
            raise ValueError(f"slice {z} is outside the store's {self.shape[0]} slices")
        planes = [mask_image(masks[o]) for o in self.objects]
        if self.record["probabilities"]:
            planes += [np.asarray(band.probabilities[o], np.float32) for o in self.objects]
        rows, width = planes[0].shape
        if width != self.shape[2] or band.height != self.shape[1] or start + rows > band.height:
            raise ValueError(
                f"slice {band.name} is {rows} x {width} from row {start}; the store's slices {self.shape[1:]}"
            )
        if start % 2 ** (len(self.levels) - 1):
            raise ValueError(f"a band starting at row {start} cannot be halved {len(self.levels) - 1} times")
        if self._open_arrays is None:
            self._open_arrays = self._arrays()
        for (kind, arrays), plane in zip(self._open_arrays, planes, strict=True):
            for level, array in enumerate(arrays):
                if level:
                    plane = downsample(plane, kind)
                first = start >> level
                array[z, first : first + len(plane)] = plane
        if band.last:
            (self.path / DONE_FOLDER / str(z)).touch()  # after the data: a marked slice is whole
            self.done.add(z)

    def finish(self, raw=None) -> list[Path]:
        """Mark the store complete when every slice is done; returns ``[path]``. A store with
        slices still missing (a run of part of the stack) stays resumable."""
        if len(self.done) == self.shape[0]:
            import zarr

            root = zarr.open_group(str(self.path), mode="r+")
            root.attrs[RECORD_KEY] = {**self.record, "complete": True}
        self.written = [self.path]
        return self.written

    def abort(self) -> None:
        """A stopped run leaves the store as it is: the finished slices are kept for ``--resume``."""


def _check_array(folder: Path, shape: tuple[int, int, int]) -> None:
    """Refuse an array in a store being resumed that is not the one this module made."""
    try:
        meta = json.loads((folder / ".zarray").read_text())
        same = meta.get("shape") == list(shape) and meta.get("chunks") == [1, *(min(n, CHUNK_YX) for n in shape[1:])]
        same = same and meta.get("compressor", {}).get("id") == "blosc" and not meta.get("filters")
    except (OSError, ValueError, AttributeError):
        same = False
    if not same:
        raise InputError(folder, "is not the array an EMViewer prediction of this input writes; it cannot be resumed")


def _read_record(path: Path) -> dict:
    """The run record in the root attributes of the store at ``path``; :class:`InputError` when
    there is none (not one of our stores)."""
    try:
        record = json.loads((path / ".zattrs").read_text())[RECORD_KEY]
        if not isinstance(record, dict) or "objects" not in record:
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(path, "exists and is not an EMViewer prediction store; refusing to write into it") from None
    return record


def open_store_masks(path: str | Path) -> tuple[dict[str, Volume], set[int], dict]:
    """The masks of a prediction store, to show or measure: each object's full-size mask image
    (``(Z, Y, X)`` uint8 0/255, read lazily), the slices (0-based) marked done (an unfinished
    run's other slices hold nothing yet), and the run's record.

    Raises :class:`InputError` (naming ``path``) for anything that is not an EMViewer
    prediction store or whose arrays do not open.
    """
    from .io import open_volume

    path = Path(path)
    if not (path / ".zattrs").is_file():
        raise InputError(path, "is not an EMViewer prediction store (emviewer predict -o OUT.zarr writes one)")
    record = _read_record(path)
    objects = [str(o) for o in record.get("objects", [])]
    masks = {obj: open_volume(f"{path}:{obj}/level=0") for obj in objects}
    done = _marked_done(path) if (path / DONE_FOLDER).is_dir() else set()
    shape = record.get("shape")
    return masks, {z for z in done if shape and 0 <= z < int(shape[0])}, record


def _marked_done(path: Path) -> set[int]:
    """The slices (0-based) with a done marker in the store at ``path``."""
    return {int(p.name) for p in (path / DONE_FOLDER).iterdir() if p.name.isdigit()}
