"""``RemotePredictor``: the ``Predictor`` protocol over HTTP, for users without a GPU.

The stack is written to a temporary TIFF, uploaded in a stream, predicted on the server
(progress by polling, cancel by DELETE), and the HDF5 result is downloaded and handed back
slice by slice, exactly as the local predictor would.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests
from pydantic import ValidationError
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..core.errors import InputError, ReportedError
from ..core.predict import SliceResult, pass_warning
from ..core.progress import Cancelled, CancelToken, Progress, check, report
from ..core.volume import Volume
from .schemas import (
    API_PREFIX,
    FILES_FIELD,
    PARAMETERS_FIELD,
    Health,
    JobParameters,
    JobState,
    JobStatus,
    first_problem,
)
from .upload import MultipartBody


class RemoteError(ReportedError):
    """The server refused the job, failed it, or stopped answering; the message says which
    (CLI exit status 4)."""

    exit_status = 4


class ServerBusyError(RemoteError):
    """The server's queue is full (503); worth trying again a little later."""


def _session(token: str, retries: int) -> requests.Session:
    session = requests.Session()
    # Retry only when the connection cannot be made (server restarting, network blip):
    # nothing was sent, so even POST is safe to repeat.
    retry = Retry(total=retries, connect=retries, read=0, status=0, other=0, backoff_factor=0.25, allowed_methods=None)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.headers["Authorization"] = f"Bearer {token}"
    return session


@dataclass
class RemotePredictor:
    """Predicts on an EMViewer server (``emviewer serve``).

    Parameters
    ----------
    url
        The server, e.g. ``http://gpu-box:8765``.
    token
        The server's token (``Authorization: Bearer``).
    objects, models, mode, tta, keep_long_objects
        As for the local predictor; ``models`` names the server's models per object.
    timeout
        Seconds to wait for the server to answer one request (connect and read).
    busy_wait
        How long to keep trying while the server's queue is full.
    """

    url: str
    token: str
    objects: Sequence[str]
    models: Mapping[str, Sequence[str]] = field(default_factory=dict)
    mode: str = "fast"
    tta: int | None = None
    keep_long_objects: bool = False
    timeout: float = 30.0
    retries: int = 3
    poll_interval: float = 0.5
    busy_wait: float = 300.0

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.objects = list(self.objects)
        self._http = _session(self.token, self.retries)

    # ------------------------------------------------------------------ requests

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        """One request; connection problems and refusals become a :class:`RemoteError`."""
        try:
            response = self._http.request(method, f"{self.url}{API_PREFIX}{path}", timeout=self.timeout, **kwargs)
        except requests.exceptions.Timeout:
            raise RemoteError(self.url, f"the server did not answer within {self.timeout:g} s") from None
        except requests.exceptions.ConnectionError:
            raise RemoteError(self.url, "cannot reach the server (is it running, and is the address right?)") from None
        if response.status_code == 503:
            raise ServerBusyError(self.url, self._refusal(response))
        if response.status_code >= 400:
            raise RemoteError(self.url, self._refusal(response))
        return response

    @staticmethod
    def _refusal(response: requests.Response) -> str:
        try:
            detail = response.json().get("detail", "")
        except ValueError:
            detail = ""
        if response.status_code == 401:
            return (
                "the server refused the token (401): give its token with --token or $EMVIEWER_TOKEN "
                "(in the app: the server settings)"
            )
        return f"the server answered {response.status_code}: {detail or response.reason}"

    def health(self) -> Health:
        return Health.model_validate(self._call("GET", "/health").json())

    # ------------------------------------------------------------------ a job

    def _submit(
        self, stack: Path, slices: Sequence[int] | None, progress: Progress | None, cancel: CancelToken | None
    ) -> JobStatus:
        """Upload the stack with the parameters; while the server is busy, wait and try again."""
        try:
            parameters = JobParameters(
                objects=self.objects,
                models={k: list(v) for k, v in self.models.items()},
                mode=self.mode,
                tta=self.tta,
                slices=slices,
                keep_long_objects=self.keep_long_objects,
            )
        except ValidationError as exc:
            raise InputError(None, f"online mode: {first_problem(exc.errors())}") from None
        limit = self.health().max_upload_bytes
        deadline, pause = time.monotonic() + self.busy_wait, 0.5
        while True:
            body = MultipartBody(
                {PARAMETERS_FIELD: parameters.model_dump_json(exclude_none=True)},
                [(FILES_FIELD, stack)],
                on_read=lambda sent, size: report(progress, sent, size, "uploading"),
            )
            if len(body) > limit:
                # the stack travels as an uncompressed TIFF, so a compressed file may grow on the way
                raise RemoteError(
                    self.url,
                    f"the stack is {len(body) / 2**20:.1f} MiB as sent (uncompressed), "
                    f"over the server's upload limit of {limit / 2**20:.1f} MiB",
                )
            try:
                response = self._call("POST", "/jobs", data=body, headers={"Content-Type": body.content_type})
                return JobStatus.model_validate(response.json())
            except ServerBusyError:
                if time.monotonic() + pause > deadline:
                    raise
            finally:
                body.close()
            report(progress, 0, 1, "the server is busy; waiting to send the stack")
            time.sleep(pause)
            check(cancel)
            pause = min(pause * 2, 10.0)

    def _wait(
        self,
        job: JobStatus,
        progress: Progress | None,
        cancel: CancelToken | None,
        on_warning: Callable[[str], None] | None = None,
    ) -> JobStatus:
        told = 0
        while True:
            for line in job.warnings[told:]:  # as soon as the server has them: the first slice's check
                pass_warning(f"server: {line}", on_warning)
            told = len(job.warnings)
            if job.state not in (JobState.queued, JobState.running):
                break
            if cancel is not None and cancel.cancelled:
                self._cancel(job.id)
                check(cancel)
            report(
                progress,
                job.done,
                max(job.total, 1),
                job.message if job.state == JobState.running else "waiting for the server",
            )
            time.sleep(self.poll_interval)
            job = JobStatus.model_validate(self._call("GET", f"/jobs/{job.id}").json())
        if job.state == JobState.failed:
            raise RemoteError(self.url, f"the job failed: {job.message}")
        if job.state == JobState.cancelled:
            raise Cancelled()
        return job

    def _cancel(self, job_id: str) -> None:
        # the user asked to stop: a server that cannot be told does not change that
        with contextlib.suppress(RemoteError):
            self._call("DELETE", f"/jobs/{job_id}")

    def _download(self, job: JobStatus, target: Path) -> Path:
        path = target / "prediction.h5"
        with self._call("GET", f"/jobs/{job.id}/result", stream=True) as response, open(path, "wb") as f:
            try:
                for chunk in response.iter_content(1 << 20):
                    f.write(chunk)
            except requests.exceptions.RequestException:
                raise RemoteError(self.url, "the connection broke while downloading the result") from None
        self._cancel(job.id)  # the result is ours now: free the server's copy
        return path

    def iter_predict(
        self,
        volume: Volume,
        slices: Sequence[int] | None = None,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> Iterator[SliceResult]:
        """Upload the whole stack (context slices and intensity levels as locally), predict ``slices``.

        The server's lines about the input (e.g. that it looks unlike a model's training data)
        go to ``on_warning``, prefixed ``server:``, else are issued as
        :class:`~emviewer.core.errors.InputWarning`."""
        import h5py

        from ..core.io.tiff import write_tiff

        slices = list(range(len(volume))) if slices is None else [int(z) for z in slices]
        with tempfile.TemporaryDirectory(prefix="emviewer-remote-") as tmp:
            stack = Path(tmp) / "stack.tif"
            write_tiff(stack, volume.iter_slices(), volume.shape, volume.dtype)
            check(cancel)
            job = self._submit(stack, slices if slices != list(range(len(volume))) else None, progress, cancel)
            job = self._wait(job, progress, cancel, on_warning)
            result = self._download(job, Path(tmp))
            with h5py.File(result, "r") as h5:
                for i, z in enumerate(slices):
                    probabilities = {obj: np.asarray(h5[f"probabilities/{obj}"][i], np.float32) for obj in self.objects}
                    yield SliceResult(z, volume.slice_names[z], probabilities)
        report(progress, len(slices), len(slices), "done")
