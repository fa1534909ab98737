"""Request and response bodies of the online-mode API (``/v1``), shared by server and client.

Only pydantic here: the server imports this module without the client's HTTP library.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

API_PREFIX = "/v1"

#: Form field names of ``POST /v1/jobs`` (multipart): one JSON text and one or more files.
PARAMETERS_FIELD = "parameters"
FILES_FIELD = "files"

ObjectKey = Literal["mito", "nuclei", "membrane"]
#: Names only (registered models, HDF5 datasets): never a path on the server.
ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]


def first_problem(errors: Sequence[Any], prefix: str = "") -> str:
    """The first of pydantic's validation errors as one line, ``where: what``."""
    first = errors[0] if errors else {}
    where = ".".join(([prefix] if prefix else []) + [str(p) for p in first.get("loc", ()) if p != "body"])
    message = first.get("msg", "invalid request")
    return f"{where}: {message}" if where else message


class JobParameters(BaseModel):
    """What to predict: sent as the ``parameters`` form field (JSON) with the upload."""

    model_config = ConfigDict(extra="forbid")

    objects: list[ObjectKey] = Field(min_length=1, max_length=3, description="objects to segment")
    models: dict[ObjectKey, list[ModelName]] = Field(
        default_factory=dict, description="registered model names per object; the mode's default where absent"
    )
    mode: Literal["fast", "accurate"] = "fast"
    tta: Literal[1, 8, 16] | None = Field(
        None, description="test-time variants; 1 in fast mode and 16 in accurate mode when absent"
    )
    slices: list[int] | None = Field(None, max_length=100_000, description="slice indices to predict; all when absent")
    keep_long_objects: bool = Field(
        False, description="keep objects longer than the models' cards allow (max_object_length_px)"
    )
    dataset: str | None = Field(
        None,
        pattern=r"^/?[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$",
        max_length=256,
        description="dataset inside an HDF5 or Zarr upload",
    )


class JobState(str, Enum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


FINISHED_STATES = (JobState.done, JobState.failed, JobState.cancelled)


class JobStatus(BaseModel):
    """A job as ``GET /v1/jobs/{id}`` reports it; times are seconds (Unix time for instants)."""

    id: str
    state: JobState
    done: int = Field(description="work units finished (tiles)")
    total: int = Field(description="work units in all; 0 until the job starts")
    message: str = ""
    objects: list[str]
    slices: int = Field(description="slices to predict")
    shape: list[int] = Field(description="uploaded stack shape (Z, Y, X)")
    created: float
    queued_seconds: float | None = None
    running_seconds: float | None = None
    expires: float | None = Field(None, description="when a finished job and its result are deleted")
    warnings: list[str] = Field(
        default_factory=list, description="one line each about the input, e.g. unlike a model's training data"
    )


class ModelInfo(BaseModel):
    name: str
    object: str
    card: dict


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    backend: str
    device: str
    max_upload_bytes: int
    jobs_waiting: int


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: one message for the user, no internals."""

    detail: str
