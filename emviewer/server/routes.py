"""The ``/v1`` endpoints. Heavy work (opening files, predicting) runs off the event loop."""

from __future__ import annotations

import shutil

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ..core.errors import InputError
from ..remote.schemas import (
    FILES_FIELD,
    PARAMETERS_FIELD,
    ErrorBody,
    Health,
    JobParameters,
    JobState,
    JobStatus,
    ModelInfo,
    first_problem,
)
from .auth import require_token
from .budget import OverBudgetError
from .jobs import Job, QueueFullError, new_job_folder
from .runner import prepare_job_input
from .uploads import UploadError, receive_form

router = APIRouter()
JobId = PathParam(pattern=r"^[0-9a-f]{32}$", description="the id POST /jobs answered")
#: What each refusal means; every one answers ``{"detail": "<one line>"}``.
_MEANING = {
    400: "the upload body is not well-formed multipart (cut short, no boundary)",
    401: "missing or wrong token (`Authorization: Bearer <token>`)",
    404: "no such job (never submitted, deleted, or its result expired)",
    409: "the job is not done yet: no result to fetch",
    413: "over the server's job budget: upload size, parts per upload, decoded image data, or slices per job",
    415: "the body is not multipart/form-data",
    422: "the request is refused: parameters, job id or uploaded file (the message names the file and the problem)",
    500: "a fault of the server (logged there); the message has no details",
    503: "too many jobs waiting; try again after Retry-After seconds",
}


def _answers(*codes: int) -> dict:
    return {code: {"model": ErrorBody, "description": _MEANING[code]} for code in (*codes, 500)}


_errors = _answers(401, 404, 422)  # a job's status, result or cancel (422: not a job id); plus 409 for a result

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


@router.get("/models", response_model=list[ModelInfo], dependencies=[Depends(require_token)], responses=_answers(401))
def models(request: Request) -> list[ModelInfo]:
    """The models this server predicts with, and their cards."""
    return [
        ModelInfo(name=e.name, object=e.card.object, card=e.card.to_json()) for e in request.app.state.store.entries
    ]


def _parse_parameters(text: str | None) -> JobParameters:
    if text is None:
        raise InputError(None, f"the form needs a {PARAMETERS_FIELD!r} field (JSON)")
    try:
        return JobParameters.model_validate_json(text)
    except ValidationError as exc:
        raise InputError(None, first_problem(exc.errors(), PARAMETERS_FIELD)) from None


def _prepare(job_id: str, folder, form, store, settings, made: list[Job]) -> Job:
    """Check the parameters, the upload (with core), the budget and the models; a Job ready to queue.

    The upload is opened once here: the job carries it to the worker and the job manager closes
    it when the job ends. The job is also put in ``made``, so that a request that ends before the
    job is queued can close it.
    """
    parameters = _parse_parameters(form.fields.get(PARAMETERS_FIELD))
    prepared = prepare_job_input(form.files, parameters, store, settings, folder)
    made.append(Job(job_id, folder, parameters, prepared.volume.shape, prepared, prepared.n_slices))
    return made[-1]


#: What a client (and a stateful API tester) may do next with the id a new job answers.
_JOB_LINKS = {
    name: {"operationId": operation, "parameters": {"job_id": "$response.body#/id"}}
    for name, operation in (("status", "job_status"), ("result", "job_result"), ("cancel", "cancel_job"))
}


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobStatus,
    dependencies=[Depends(require_token)],
    responses={**_answers(400, 401, 413, 415, 422, 503), 202: {"links": _JOB_LINKS}},
    openapi_extra={"requestBody": _UPLOAD_BODY},
)
async def submit_job(request: Request) -> JobStatus:
    """Upload a stack (TIFF, HDF5, Zarr zip, or PNG/TIFF slices) with its parameters; 202 + job."""
    state = request.app.state
    limit = state.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"upload of {declared} bytes is over the server's limit of {limit} bytes")
    job_id, folder = new_job_folder(state.work_dir)
    made: list[Job] = []
    try:
        content_type = request.headers.get("content-type", "")
        form = await receive_form(
            request.stream(), content_type, folder / "input", limit, FILES_FIELD, max_parts=state.settings.max_parts
        )
        job = await run_in_threadpool(_prepare, job_id, folder, form, state.store, state.settings, made)
        state.jobs.submit(job)
    except BaseException as exc:
        for unqueued in made:
            unqueued.input.close()
        # a refused upload leaves nothing behind; deleting 20,000 parts takes a while: in a thread
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shutil.rmtree, folder, True)
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
    if isinstance(exc, OverBudgetError):
        return HTTPException(413, str(exc))
    if isinstance(exc, QueueFullError):
        return HTTPException(503, str(exc), headers={"Retry-After": "2"})
    return None


def _job(request: Request, job_id: str) -> Job:
    job = request.app.state.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id} (never submitted, deleted, or its result expired)")
    return job


@router.get(
    "/jobs/{job_id}",
    response_model=JobStatus,
    dependencies=[Depends(require_token)],
    responses=_errors,
    operation_id="job_status",
)
def job_status(request: Request, job_id: str = JobId) -> JobStatus:
    """State, progress (done of total tile passes: a tile through one model in one test-time
    variant), message and timings of a job."""
    return _job(request, job_id).status()


@router.get(
    "/jobs/{job_id}/result",
    operation_id="job_result",
    dependencies=[Depends(require_token)],
    responses={
        **_errors,
        **_answers(409),
        200: {
            "content": {"application/x-hdf5": {}},
            "description": "HDF5: /masks/<object> (uint8 0/255), /probabilities/<object> (float32)",
        },
    },
)
def job_result(request: Request, job_id: str = JobId) -> FileResponse:
    """The finished job's HDF5 file, streamed."""
    job = _job(request, job_id)
    if job.state != JobState.done or job.result is None:
        raise HTTPException(409, f"job {job_id} is {job.state.value}; the result is ready when it is done")
    return FileResponse(job.result, media_type="application/x-hdf5", filename="prediction.h5")


@router.delete(
    "/jobs/{job_id}",
    response_model=JobStatus,
    dependencies=[Depends(require_token)],
    responses=_errors,
    operation_id="cancel_job",
)
def cancel_job(request: Request, job_id: str = JobId) -> JobStatus:
    """Cancel a waiting or running job (its files are deleted), or delete a finished one."""
    job = request.app.state.jobs.cancel(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id} (never submitted, deleted, or its result expired)")
    return job.status()
