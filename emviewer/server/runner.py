"""What a job does: open the upload with core, predict, write the HDF5 result."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

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


def open_upload(files: list[Path], dataset: Optional[str]) -> Volume:
    """The uploaded stack: one file (TIFF, HDF5, Zarr zip, image) or a set of slice images."""
    if not files:
        raise InputError(None, "no file uploaded")
    spec = f"{files[0]}:{dataset}" if dataset else str(files[0])
    volume = open_volume(spec if len(files) == 1 else files[0].parent)
    check_volume_image(volume)
    return volume


def check_slices(parameters: JobParameters, n_slices: int) -> int:
    """How many slices the job predicts; refuses indices outside the stack."""
    if parameters.slices is None:
        return n_slices
    wrong = [z for z in parameters.slices if not 0 <= z < n_slices]
    if wrong:
        raise InputError(None, f"slice {wrong[0]} is outside the stack (it has {n_slices} slices, numbered from 0)")
    return len(parameters.slices)


def public_message(exc: InputError, input_dir: Path) -> str:
    """The core's message with the server's own folders taken out (clients see file names only)."""
    return str(exc).replace(str(input_dir) + os.sep, "").replace(str(input_dir), "upload")


def open_job_inputs(files: list[Path], parameters: JobParameters, store: ModelStore, input_dir: Path) -> tuple[Volume, dict]:
    """The uploaded stack and the models chosen for it; core messages name upload files only."""
    try:
        return open_upload(files, parameters.dataset), store.choose(parameters.objects, parameters.models, parameters.mode)
    except InputError as exc:
        raise InputError(None, public_message(exc, input_dir)) from None


def run_job(job: Job, progress: Callable[[int, int, str], None], cancel: CancelToken, *, store: ModelStore) -> Path:
    """Predict the job's upload and write ``result/prediction.h5`` (masks and probabilities)."""
    p = job.parameters
    volume, models = open_job_inputs(job.inputs, p, store, job.folder / "input")
    predictor = LocalPredictor(models, tta=mode_tta(p.mode, p.tta), keep_long_objects=p.keep_long_objects)
    record = provenance(command="serve", mode=p.mode, tta=predictor.tta, slices=p.slices, keep_long_objects=p.keep_long_objects, models=models_record(models))
    writer = PredictionWriter(job.folder / "result", p.objects, "h5", probabilities=True, provenance=record, pixel_size=volume.pixel_size)
    results = predictor.iter_predict(volume, slices=p.slices, progress=progress, cancel=cancel)
    return write_predictions(results, writer)[0]
