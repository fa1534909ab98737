"""The ``/v1`` endpoints. Heavy work (opening files, predicting) runs off the event loop."""

from __future__ import annotations

import shutil

from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Request
from fastapi.responses import FileResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ..core.errors import InputError
from ..remote.schemas import FILES_FIELD, PARAMETERS_FIELD, ErrorBody, Health, JobParameters, JobState, JobStatus, ModelInfo
from .auth import require_token
from .jobs import Job, QueueFullError, new_job_folder
from .runner import check_slices, open_upload, public_message
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
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(None, f"{PARAMETERS_FIELD}{'.' + where if where else ''}: {first['msg']}") from None


def _prepare(job_id: str, folder, form, store) -> Job:
    """Check the parameters, the upload (with core) and the models; a Job ready to queue."""
    input_dir = folder / "input"
    parameters = _parse_parameters(form.fields.get(PARAMETERS_FIELD))
    try:
        volume = open_upload(form.files, parameters.dataset)
        store.choose(parameters.objects, parameters.models, parameters.mode)
    except InputError as exc:
        raise InputError(None, public_message(exc, input_dir)) from None
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
    except UploadError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(exc.status, exc.detail) from None
    except InputError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(422, str(exc)) from None
    except QueueFullError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(503, str(exc), headers={"Retry-After": "2"}) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return job.status()


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
