"""Writing predictions as they arrive: masks (0/255) and optionally probabilities per object.

``png`` writes each slice as soon as it is predicted (``OUTDIR/<stem>.png``, or
``OUTDIR/<object>/<stem>.png`` for several objects), so finished slices are kept even if a
long run is cancelled. ``tif`` and ``h5`` collect the slices and write one file per output
at the end, atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from .io.slices import write_slices
from .predict import SliceResult
from .volume import Volume, from_array

FORMATS = ("png", "tif", "h5")


def mask_image(mask: np.ndarray) -> np.ndarray:
    """Boolean mask -> uint8 0/255."""
    return np.where(mask, 255, 0).astype(np.uint8)


def probability_image(probability: np.ndarray) -> np.ndarray:
    """Probability in [0, 1] -> uint8 0-255."""
    return np.clip(np.rint(probability * 255), 0, 255).astype(np.uint8)


class PredictionWriter:
    """Writes the :class:`SliceResult` stream of one run to ``outdir`` in one format."""

    def __init__(
        self,
        outdir: Path,
        objects: Sequence[str],
        fmt: str = "png",
        probabilities: bool = False,
        provenance: Optional[Mapping] = None,
        pixel_size: Optional[tuple] = None,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        self.outdir, self.objects, self.fmt = Path(outdir), list(objects), fmt
        self.probabilities, self.provenance = probabilities, provenance
        self.pixel_size = pixel_size  # the input's (z, y, x) nm, written into tif and h5 outputs
        self._masks: dict[str, list] = {o: [] for o in self.objects}
        self._probs: dict[str, list] = {o: [] for o in self.objects}
        self._names: list[str] = []
        self.written: list[Path] = []

    def _folder(self, obj: str) -> Path:
        return self.outdir / obj if len(self.objects) > 1 else self.outdir

    def add(self, result: SliceResult) -> None:
        masks = result.masks()
        if self.fmt == "png":
            paths, images = [], []
            for obj in self.objects:
                paths.append(self._folder(obj) / f"{result.name}.png")
                images.append(mask_image(masks[obj]))
                if self.probabilities:
                    paths.append(self._folder(obj) / "probabilities" / f"{result.name}.png")
                    images.append(probability_image(result.probabilities[obj]))
            write_slices(paths, images)
            self.written += paths
            return
        self._names.append(result.name)
        for obj in self.objects:
            self._masks[obj].append(mask_image(masks[obj]))
            if self.probabilities:
                self._probs[obj].append(result.probabilities[obj].astype(np.float32))

    def finish(self, raw: Optional[Volume] = None) -> list[Path]:
        """Write the collected stacks (``tif``/``h5``); returns every file written."""
        if self.fmt == "png" or not self._names:
            return self.written
        stack = {"slice_names": self._names, "pixel_size": self.pixel_size}
        masks = {o: from_array(np.stack(v), **stack) for o, v in self._masks.items()}
        probs = {o: from_array(np.stack(v), **stack) for o, v in self._probs.items() if v}
        if self.fmt == "h5":
            from .io.hdf5 import write_hdf5

            path = self.outdir / "prediction.h5"
            write_hdf5(path, raw=raw, masks=masks, probabilities=probs, provenance=self.provenance)
            self.written.append(path)
            return self.written
        from .io.tiff import write_tiff

        outputs = [(f"{o}.tif", m) for o, m in masks.items()] + [(f"{o}_probabilities.tif", p) for o, p in probs.items()]
        for name, volume in outputs:
            write_tiff(self.outdir / name, volume.iter_slices(), volume.shape, volume.dtype, pixel_size=self.pixel_size)
            self.written.append(self.outdir / name)
        return self.written


def write_predictions(results: Iterable[SliceResult], writer: PredictionWriter, raw: Optional[Volume] = None) -> list[Path]:
    """Feed a prediction stream to ``writer`` and finish it."""
    for result in results:
        writer.add(result)
    return writer.finish(raw)
