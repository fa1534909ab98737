"""The ``/v1`` endpoints. Heavy work (opening files, predicting) runs off the event loop."""

from __future__ import annotations

import shutil

from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Request
from fastapi.responses import FileResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ..core.errors import InputError
from ..remote.schemas import FILES_FIELD, PARAMETERS_FIELD, ErrorBody, first_problem, Health, JobParameters, JobState, JobStatus, ModelInfo
from .auth import require_token
from .jobs import Job, QueueFullError, new_job_folder
from .runner import check_slices, open_job_inputs
from .uploads import UploadError, receive_form

router = APIRouter()
JobId = PathParam(pattern=r"^[0-9a-f]{32}$", description="the id POST /jobs answered")
_errors = {code: {"model": ErrorBody} for code in (401, 404, 409, 413, 415, 422, 503)}

_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [PARAMETERS_FIELD, FILES_FIELD],
                "properties": {
                    PARAMETERS_FIELD: JobParameters.model_json_schema(),
                    FILES_FIELD: {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1},
                },
            },
            "encoding": {PARAMETERS_FIELD: {"contentType": "application/json"}},
        }
    },
}


@router.get("/health", response_model=Health)
def health(request: Request) -> Health:
    """Is the server up; no token needed. Says the upload limit so clients can check first."""
    state = request.app.state
    return Health(
        version=request.app.version,
        backend=state.device["backend"],
        device=state.device["device"],
        max_upload_bytes=state.settings.max_upload_bytes,
        jobs_waiting=state.jobs.waiting(),
    )


@router.get("/models", response_model=list[ModelInfo], dependencies=[Depends(require_token)], responses=_errors)
def models(request: Request) -> list[ModelInfo]:
    """The models this server predicts with, and their cards."""
    return [ModelInfo(name=e.name, object=str(e.card.get("object", "")), card=e.card) for e in request.app.state.store.entries]


def _parse_parameters(text: str | None) -> JobParameters:
    if text is None:
        raise InputError(None, f"the form needs a {PARAMETERS_FIELD!r} field (JSON)")
    try:
        return JobParameters.model_validate_json(text)
    except ValidationError as exc:
        raise InputError(None, first_problem(exc.errors(), PARAMETERS_FIELD)) from None


def _prepare(job_id: str, folder, form, store) -> Job:
    """Check the parameters, the upload (with core) and the models; a Job ready to queue."""
    parameters = _parse_parameters(form.fields.get(PARAMETERS_FIELD))
    volume, _ = open_job_inputs(form.files, parameters, store, folder / "input")
    n_slices = check_slices(parameters, len(volume))
    return Job(job_id, folder, parameters, tuple(volume.shape), form.files, n_slices)


@router.post("/jobs", status_code=202, response_model=JobStatus, dependencies=[Depends(require_token)], responses=_errors, openapi_extra={"requestBody": _UPLOAD_BODY})
async def submit_job(request: Request) -> JobStatus:
    """Upload a stack (TIFF, HDF5, Zarr zip, or PNG/TIFF slices) with its parameters; 202 + job."""
    state = request.app.state
    limit = state.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"upload of {declared} bytes is over the server's limit of {limit} bytes")
    job_id, folder = new_job_folder(state.work_dir)
    try:
        form = await receive_form(request.stream(), request.headers.get("content-type", ""), folder / "input", limit, FILES_FIELD)
        job = await run_in_threadpool(_prepare, job_id, folder, form, state.store)
        state.jobs.submit(job)
    except BaseException as exc:
        shutil.rmtree(folder, ignore_errors=True)  # a refused upload leaves nothing behind
        refusal = _refusal(exc)
        if refusal is None:
            raise
        raise refusal from None
    return job.status()


def _refusal(exc: BaseException) -> HTTPException | None:
    """The HTTP answer to a refused upload, or None for an unexpected error."""
    if isinstance(exc, UploadError):
        return HTTPException(exc.status, exc.detail)
    if isinstance(exc, InputError):
        return HTTPException(422, str(exc))
    if isinstance(exc, QueueFullError):
        return HTTPException(503, str(exc), headers={"Retry-After": "2"})
    return None


def _job(request: Request, job_id: str) -> Job:
    job = request.app.state.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id} (never submitted, deleted, or its result expired)")
    return job


@router.get("/jobs/{job_id}", response_model=JobStatus, dependencies=[Depends(require_token)], responses=_errors)
def job_status(request: Request, job_id: str = JobId) -> JobStatus:
    """State, progress (done of total tiles), message and timings of a job."""
    return _job(request, job_id).status()


@router.get(
    "/jobs/{job_id}/result",
    dependencies=[Depends(require_token)],
    responses={**_errors, 200: {"content": {"application/x-hdf5": {}}, "description": "HDF5: /masks/<object> (uint8 0/255), /probabilities/<object> (float32)"}},
)
def job_result(request: Request, job_id: str = JobId) -> FileResponse:
    """The finished job's HDF5 file, streamed."""
    job = _job(request, job_id)
    if job.state != JobState.done or job.result is None:
        raise HTTPException(409, f"job {job_id} is {job.state.value}; the result is ready when it is done")
    return FileResponse(job.result, media_type="application/x-hdf5", filename="prediction.h5")


@router.delete("/jobs/{job_id}", response_model=JobStatus, dependencies=[Depends(require_token)], responses=_errors)
def cancel_job(request: Request, job_id: str = JobId) -> JobStatus:
    """Cancel a waiting or running job (its files are deleted), or delete a finished one."""
    job = request.app.state.jobs.cancel(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id} (never submitted, deleted, or its result expired)")
    return job.status()
