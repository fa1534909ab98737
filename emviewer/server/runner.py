"""What a job does: open the upload with core once (:func:`prepare_job_input`, before the job
is queued), predict, write the HDF5 result."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InputError
from ..core.io import open_volume
from ..core.models.loading import LoadedModel
from ..core.predict import LocalPredictor, mode_tta, models_record
from ..core.prediction_output import PredictionWriter, write_predictions
from ..core.progress import CancelToken
from ..core.provenance import provenance
from ..core.validate import check_volume_image
from ..core.volume import Volume
from ..remote.schemas import JobParameters
from .budget import check_job
from .jobs import Job
from .models import ModelStore
from .settings import ServerSettings


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
        names = {str(obj): list(models) for obj, models in parameters.models.items()}  # API keys to core's str
        return volume, store.choose(parameters.objects, names, parameters.mode)
    except BaseException:
        volume.close()
        raise


@dataclass
class PreparedInput:
    """A checked upload, open, and the models chosen for it: carried from the check to the run.

    Attributes
    ----------
    volume : Volume
        The uploaded stack, ``(Z, Y, X)``, open until :meth:`close`.
    models : dict[str, list[LoadedModel]]
        Models per object.
    n_slices : int
        How many slices the job predicts.
    """

    volume: Volume
    models: dict[str, list[LoadedModel]]
    n_slices: int

    def close(self) -> None:
        """Close the upload's files (idempotent)."""
        self.volume.close()


def prepare_job_input(
    files: list[Path], parameters: JobParameters, store: ModelStore, settings: ServerSettings, job_folder: Path
) -> PreparedInput:
    """Open the upload once and check it: parameters against the models, the budget, the image.

    Raises
    ------
    InputError
        Unreadable upload, unknown model, a slice outside the stack, a mask sent as the image.
    OverBudgetError
        The job asks for more than ``settings`` allow.
    """
    volume, models = open_job_inputs(files, parameters, store, job_folder)
    try:
        n_slices = check_job(volume, parameters.slices, settings)
        check_upload_image(volume, job_folder)
    except BaseException:
        volume.close()
        raise
    return PreparedInput(volume, models, n_slices)


def run_job(job: Job, progress: Callable[[int, int, str], None], cancel: CancelToken) -> Path:
    """Predict the job's prepared input and write ``result/prediction.h5`` (masks and probabilities).

    ``job.input`` is a :class:`PreparedInput` (models chosen when it was prepared); the job
    manager closes it when the job ends.
    """
    p = job.parameters
    prepared = job.input
    if not isinstance(prepared, PreparedInput):
        raise TypeError(f"job {job.id} has no prepared input")
    volume, models = prepared.volume, prepared.models
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
    results = predictor.iter_predict(volume, slices=p.slices, progress=progress, cancel=cancel, on_warning=job.warn)
    with public_errors(job.folder):
        return write_predictions(results, writer)[0]
