"""Writing predictions as they arrive: masks (0/255) and optionally probabilities per object.

``png`` writes each slice as soon as it is predicted (``OUTDIR/<stem>.png``, or
``OUTDIR/<object>/<stem>.png`` for several objects), so finished slices are kept even if a
long run is cancelled. ``tif`` and ``h5`` append each slice to their files as it arrives, so
memory does not grow with the number of slices; the files are written under temporary names
in the output folder and renamed when the run finishes, or deleted when it is abandoned.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .bands import BandResult
from .io.atomic import atomic_paths
from .io.slices import write_slices
from .overlay import mask_image
from .predict import SliceResult
from .volume import Volume

FORMATS = ("png", "tif", "h5")


def probability_image(probability: np.ndarray) -> np.ndarray:
    """Probability in [0, 1] -> uint8 0-255."""
    return np.clip(np.rint(probability * 255), 0, 255).astype(np.uint8)


class _Abandoned(Exception):
    """Handed to the temporary files' context on :meth:`PredictionWriter.abort` so it deletes them."""


class _HDF5Output:
    """``prediction.h5`` grown one slice at a time, laid out as :func:`~.io.hdf5.write_hdf5` writes it."""

    def __init__(
        self, path: Path, names: Sequence[tuple[str, npt.DTypeLike]], shape: tuple, provenance: Mapping | None
    ) -> None:
        import h5py

        from .io.hdf5 import create_stack, provenance_attributes

        self._h5 = h5py.File(path, "w")
        self._h5.attrs.update(provenance_attributes(provenance))
        self._datasets = [create_stack(self._h5, name, (0, *shape), dtype, growable=True) for name, dtype in names]

    def append(self, planes: Sequence[np.ndarray], start: int = 0) -> None:
        """Rows ``start`` on of the current slice; a band starting at row 0 begins a new slice."""
        for ds, plane in zip(self._datasets, planes, strict=True):
            if start == 0:
                ds.resize(ds.shape[0] + 1, axis=0)
            ds[ds.shape[0] - 1, start : start + len(plane)] = plane

    def close(self, raw: Volume | None, pixel_size: tuple | None) -> None:
        """Write ``raw`` slice by slice, the voxel size on every dataset, and close the file."""
        from .io.hdf5 import pixel_size_attributes, write_stack

        datasets = list(self._datasets)
        if raw is not None:
            datasets.append(write_stack(self._h5, "raw", raw.shape, raw.dtype, raw.iter_slices()))
        voxel = pixel_size_attributes((raw.pixel_size if raw is not None else None) or pixel_size)
        for ds in datasets:
            ds.attrs.update(voxel)
        self._h5.close()

    def discard(self) -> None:
        self._h5.close()


class _TiffOutput:
    """An ImageJ stack whose pages are appended as slices arrive, as :func:`~.io.tiff.write_tiff` writes it."""

    def __init__(self, path: Path, pixel_size: tuple | None) -> None:
        import tifffile

        from .io.tiff import imagej_calibration

        self._metadata, self._options = imagej_calibration(pixel_size)
        self._tif = tifffile.TiffWriter(path, imagej=True)

    def append(self, planes: Sequence[np.ndarray]) -> None:
        # (1, Y, X) pages of one contiguous series: tifffile counts them and writes ImageJ's
        # images=/slices= on close (and only the first page's IFD when the file passes 4 GB,
        # as ImageJ does, exactly like write_tiff)
        (plane,) = planes
        options = {"photometric": "minisblack", "metadata": self._metadata, **self._options}
        self._tif.write(plane[None], contiguous=True, **options)

    def close(self, raw: Volume | None, pixel_size: tuple | None) -> None:
        self._tif.close()

    def discard(self) -> None:
        self._tif.filehandle.close()  # not TiffWriter.close: no need to finish the page chain


class PredictionWriter:
    """Writes the :class:`SliceResult` stream of one run to ``outdir`` in one format.

    Parameters
    ----------
    outdir
        Output folder, made when needed.
    objects
        Object names; each result must have a ``(Y, X)`` probability for each.
    fmt
        ``png`` (one file per slice and output), ``tif`` (``<object>.tif`` and
        ``<object>_probabilities.tif``, ImageJ stacks) or ``h5`` (``prediction.h5``).
    probabilities
        Also write the probabilities: float32 in [0, 1] in ``tif``/``h5``, uint8 0-255 in ``png``.
    provenance
        Root attributes of ``prediction.h5``.
    pixel_size
        The input's ``(z, y, x)`` voxel size in nm, written into ``tif`` and ``h5`` outputs.

    Raises
    ------
    ValueError
        An unknown ``fmt``.
    """

    def __init__(
        self,
        outdir: Path,
        objects: Sequence[str],
        fmt: str = "png",
        probabilities: bool = False,
        provenance: Mapping | None = None,
        pixel_size: tuple | None = None,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        self.outdir, self.objects, self.fmt = Path(outdir), list(objects), fmt
        self.probabilities, self.provenance = probabilities, provenance
        self.pixel_size = pixel_size
        self.written: list[Path] = []
        # the temporary files' context (atomic_paths) while tif/h5 are being written
        self._staged: contextlib.AbstractContextManager[list[Path]] | None = None
        self._outputs: list = []
        self._shape: tuple[int, ...] = ()  # (Y, X) of the first slice, once the files are open
        self._pending: list[list[np.ndarray]] = []  # png, tif: the planes of the bands of the slice so far

    def _folder(self, obj: str) -> Path:
        return self.outdir / obj if len(self.objects) > 1 else self.outdir

    def _targets(self) -> list[Path]:
        if self.fmt == "h5":
            return [self.outdir / "prediction.h5"]
        names = [f"{o}.tif" for o in self.objects]
        names += [f"{o}_probabilities.tif" for o in self.objects if self.probabilities]
        return [self.outdir / name for name in names]

    def _open(self, shape: tuple) -> None:
        staged = atomic_paths(self._targets())
        temps = staged.__enter__()
        self._staged, self._shape = staged, shape
        if self.fmt == "h5":
            names: list[tuple[str, npt.DTypeLike]] = [(f"masks/{o}", np.uint8) for o in self.objects]
            names += [(f"probabilities/{o}", np.float32) for o in self.objects if self.probabilities]
            self._outputs = [_HDF5Output(temps[0], names, shape, self.provenance)]
        else:
            for tmp in temps:
                self._outputs.append(_TiffOutput(tmp, self.pixel_size))

    def add(self, result: SliceResult | BandResult) -> None:
        """Write one predicted slice (``png``) or append it to the output files (``tif``, ``h5``).
        A slice may come as bands of rows (:mod:`.bands`): ``h5`` writes each band as it comes,
        ``png`` and ``tif`` join a slice's bands first.

        Raises
        ------
        ValueError
            A slice whose ``(Y, X)`` shape differs from the first slice's (``tif``, ``h5``).
        """
        band = BandResult.of(result)
        planes = self._planes(band)
        if self.fmt != "h5":
            self._pending.append(planes)
            if not band.last:
                return
            planes, self._pending = [np.concatenate(parts) for parts in zip(*self._pending, strict=True)], []
        if self.fmt == "png":
            self._write_png(band.name, planes)
            return
        shape = (band.height, planes[0].shape[1])
        if self._staged is None:
            self._open(shape)
        elif shape != self._shape:
            (y, x), (y0, x0) = shape, self._shape
            raise ValueError(f"slice {band.name} is {y} x {x} pixels, the earlier ones {y0} x {x0}")
        if self.fmt == "h5":
            self._outputs[0].append(planes, band.start)
        else:
            for output, plane in zip(self._outputs, planes, strict=True):
                output.append([plane])

    def _planes(self, band: BandResult) -> list[np.ndarray]:
        """The band's masks (uint8 0/255), then its probabilities (``png``: uint8 0-255, else float32)."""
        masks = band.masks()
        planes = [mask_image(masks[o]) for o in self.objects]
        if self.probabilities:
            scaled = probability_image if self.fmt == "png" else (lambda p: np.asarray(p, np.float32))
            planes += [scaled(band.probabilities[o]) for o in self.objects]
        return planes

    def _write_png(self, name: str, planes: list[np.ndarray]) -> None:
        paths = [self._folder(obj) / f"{name}.png" for obj in self.objects]
        if self.probabilities:
            paths += [self._folder(obj) / "probabilities" / f"{name}.png" for obj in self.objects]
        write_slices(paths, planes)
        self.written += paths

    def finish(self, raw: Volume | None = None) -> list[Path]:
        """Complete the run: close the ``tif``/``h5`` files and rename them into place.

        Parameters
        ----------
        raw
            ``h5`` only: the input stack, written as ``/raw`` slice by slice (its voxel size,
            when it has one, is the one recorded on every dataset).

        Returns
        -------
        list of Path
            Every file written; empty for ``tif``/``h5`` when no slice was added.
        """
        staged, outputs = self._staged, self._outputs
        if staged is None:
            return self.written
        try:
            for output in outputs:
                output.close(raw, self.pixel_size)
        except BaseException:
            self.abort()
            raise
        self._staged, self._outputs = None, []
        staged.__exit__(None, None, None)
        self.written += self._targets()
        return self.written

    def abort(self) -> None:
        """Abandon the run: close and delete the partial ``tif``/``h5`` files (an earlier file
        of the same name is kept); ``png`` slices already written stay. Safe to call twice."""
        staged, outputs = self._staged, self._outputs
        self._staged, self._outputs, self._pending = None, [], []
        for output in outputs:
            # the files are deleted next; a failed close must not hide why we stop
            with contextlib.suppress(Exception):
                output.discard()
        if staged is not None:
            staged.__exit__(_Abandoned, _Abandoned(), None)


class PredictionSink(Protocol):
    """Where a prediction stream goes: :class:`PredictionWriter`, or an OME-Zarr
    :class:`~.prediction_zarr.PredictionStore`."""

    def add(self, result: SliceResult | BandResult) -> None: ...

    def finish(self, raw: Volume | None = None) -> list[Path]: ...

    def abort(self) -> None: ...


def write_predictions(
    results: Iterable[SliceResult | BandResult], writer: PredictionSink, raw: Volume | None = None
) -> list[Path]:
    """Feed a prediction stream to ``writer`` and finish it; returns every file written.

    When the stream raises (e.g. :class:`~.progress.Cancelled`), the writer is aborted (no
    partial ``tif``/``h5`` file is left) and the exception propagates.
    """
    try:
        for result in results:
            writer.add(result)
        return writer.finish(raw)
    except BaseException:
        writer.abort()
        raise
