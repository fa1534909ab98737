"""What a job does: open the upload with core, predict, write the HDF5 result."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.errors import InputError
from ..core.io import open_volume
from ..core.predict import LocalPredictor, mode_tta, models_record
from ..core.prediction_output import PredictionWriter, write_predictions
from ..core.progress import CancelToken
from ..core.provenance import provenance
from ..core.validate import check_volume_image
from ..core.volume import Volume
from ..remote.schemas import JobParameters
from .jobs import Job
from .models import ModelStore


def open_upload(files: list[Path], dataset: str | None) -> Volume:
    """The uploaded stack: one file (TIFF, HDF5, Zarr zip, image) or a set of slice images."""
    if not files:
        raise InputError(None, "no file uploaded")
    spec = f"{files[0]}:{dataset}" if dataset else str(files[0])
    return open_volume(spec if len(files) == 1 else files[0].parent)


def public_message(message: str, job_folder: Path) -> str:
    """``message`` with the server's own folders taken out: clients see their file names only."""
    input_dir = job_folder / "input"
    for folder, shown in ((input_dir, "upload"), (job_folder, "the job")):
        message = message.replace(str(folder) + os.sep, "").replace(str(folder), shown)
    return message


@contextmanager
def public_errors(job_folder: Path) -> Iterator[None]:
    """Re-raise the core's :class:`InputError` with :func:`public_message`."""
    try:
        yield
    except InputError as exc:
        raise InputError(None, public_message(str(exc), job_folder)) from None


def check_upload_image(volume: Volume, job_folder: Path) -> None:
    """Refuse a mask or label stack sent as the image (reads a sample of slices: check the
    budget first)."""
    with public_errors(job_folder):
        check_volume_image(volume)


def open_job_inputs(
    files: list[Path], parameters: JobParameters, store: ModelStore, job_folder: Path
) -> tuple[Volume, dict]:
    """The uploaded stack and the models chosen for it; core messages name upload files only."""
    with public_errors(job_folder):
        volume = open_upload(files, parameters.dataset)
    try:
        return volume, store.choose(parameters.objects, parameters.models, parameters.mode)
    except BaseException:
        volume.close()
        raise


def run_job(job: Job, progress: Callable[[int, int, str], None], cancel: CancelToken, *, store: ModelStore) -> Path:
    """Predict the job's upload and write ``result/prediction.h5`` (masks and probabilities)."""
    p = job.parameters
    volume, models = open_job_inputs(job.inputs, p, store, job.folder)
    with volume:  # closed when the job ends, however it ends
        predictor = LocalPredictor(models, tta=mode_tta(p.mode, p.tta), keep_long_objects=p.keep_long_objects)
        record = provenance(
            command="serve",
            mode=p.mode,
            tta=predictor.tta,
            slices=p.slices,
            keep_long_objects=p.keep_long_objects,
            models=models_record(models),
        )
        writer = PredictionWriter(
            job.folder / "result", p.objects, "h5", probabilities=True, provenance=record, pixel_size=volume.pixel_size
        )
        results = predictor.iter_predict(volume, slices=p.slices, progress=progress, cancel=cancel)
        with public_errors(job.folder):
            return write_predictions(results, writer)[0]
