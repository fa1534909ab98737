"""Prediction spread over a dask.distributed cluster, straight into an OME-Zarr store.

The client measures the stack's intensities once (so every worker sees the same contrast),
makes or reopens the :class:`~.prediction_zarr.PredictionStore` and cuts the slices still to
do into runs of consecutive slices (*blocks*; a run keeps each slice's context neighbours in
one worker's reading cache). Each worker opens the input itself, loads the models once per
process (:data:`_PREDICTORS`) and writes each finished slice into the store with its done
marker, so the result equals a single-process run and a stopped run resumes.

Workers must reach the input, the models and the store by the same paths (a shared file
system). A local cluster (``local:N``) gives each of its N worker processes one task at a
time and ``cores / N`` threads for TensorFlow, so the machine's cores are not oversubscribed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .errors import InputError
from .intensity_stats import TissueStats
from .io.axes import ReadOptions
from .progress import Cancelled, CancelToken, Progress, check, report

#: Blocks per worker: enough that a worker that finishes early takes another, few enough that
#: each block is long against the scheduling cost.
BLOCKS_PER_WORKER = 4

#: Predictors of this worker process by what they were made from: models load once per worker.
_PREDICTORS: dict[tuple, object] = {}


@dataclass(frozen=True)
class BlockJob:
    """What every worker needs to predict its blocks (sent once per block; small and picklable).

    ``input`` is the stack as given on the command line (a path, optionally ``:dataset``) and
    ``options`` how to read it; ``files`` each object's model files; ``stats`` the stack's
    intensities measured by the client; ``store`` the OME-Zarr prediction store's path.
    """

    input: str
    files: Mapping[str, Sequence[str]]
    stats: TissueStats
    store: str
    mode: str = "fast"
    tta: int | None = None
    keep_long_objects: bool = False
    options: ReadOptions | None = field(default=None)
    runtime: str = "keras"  # what runs the models (see .models.runtime): the client's choice


def _predictor(job: BlockJob):
    from .predict import predictor_for

    key = (tuple((o, tuple(f)) for o, f in job.files.items()), job.mode, job.tta, job.keep_long_objects, job.runtime)
    if key not in _PREDICTORS:
        _PREDICTORS[key] = predictor_for(job.files, job.mode, job.tta, job.keep_long_objects, runtime=job.runtime)
    return _PREDICTORS[key]


def warm(job: BlockJob) -> None:
    """On a worker: load the job's models now (e.g. ``client.run(warm, job)`` on every worker),
    so timing the blocks leaves out model loading."""
    _predictor(job)


def predict_block(job: BlockJob, slices: Sequence[int]) -> tuple[list[int], list[str]]:
    """On a worker: predict ``slices`` (0-based) and write each band of rows into the store as it finishes.

    Returns the slices and the out-of-domain lines the prediction gave (for the client to show).
    """
    from .io import open_volume
    from .prediction_zarr import PredictionStore

    lines: list[str] = []
    store = PredictionStore.reopen(job.store)
    with open_volume(job.input, job.options) as volume:
        for band in _predictor(job).iter_bands(volume, slices=slices, stats=job.stats, on_warning=lines.append):
            store.add(band)
    return list(slices), lines


def blocks(slices: Sequence[int], workers: int) -> list[list[int]]:
    """``slices`` cut into runs of consecutive entries, about :data:`BLOCKS_PER_WORKER` per worker."""
    size = max(1, -(-len(slices) // max(1, workers * BLOCKS_PER_WORKER)))
    return [list(slices[i : i + size]) for i in range(0, len(slices), size)]


def connect(cluster: str | None = None, scheduler: str | None = None, threads: int | None = None):
    """A dask.distributed ``Client``: a new local cluster for ``cluster="local:N"`` (N worker
    processes, each with ``threads`` threads for TensorFlow, by default cores / N), or the
    existing cluster at ``scheduler`` (``tcp://HOST:PORT``).

    Raises :class:`InputError` for a malformed ``cluster`` or an unreachable scheduler.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise InputError(scheduler, f"no dask scheduler answers there ({exc})") from None
    kind, _, count = (cluster or "").partition(":")
    if kind != "local" or not count.isdigit() or int(count) < 1:
        raise InputError(cluster, "--cluster takes local:N, N worker processes (e.g. local:2)")
    workers = int(count)
    each = str(threads or max(1, (os.cpu_count() or 1) // workers))
    env = {"OMP_NUM_THREADS": each, "TF_NUM_INTRAOP_THREADS": each, "TF_NUM_INTEROP_THREADS": "1"}
    # the cluster's own INFO lines (workers starting and closing) would bury the progress bar
    logging.getLogger("distributed").setLevel(logging.WARNING)
    local = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, env=env, dashboard_address=None,
        silence_logs=logging.WARNING,
    )  # fmt: skip
    return Client(local)


def predict_on_cluster(
    client,
    job: BlockJob,
    slices: Sequence[int],
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> list[str]:
    """Predict ``slices`` of ``job`` on ``client``'s workers into the store; returns the
    out-of-domain lines, each once. ``progress`` counts slices. On ``cancel`` the blocks
    not yet finished are cancelled and :class:`~.progress.Cancelled` is raised (the finished
    slices stay in the store for ``--resume``). A worker's error is raised here."""
    from distributed import as_completed

    workers = max(1, len(client.scheduler_info().get("workers", {})))
    futures = client.map(predict_block, [job] * len(parts := blocks(slices, workers)), parts, pure=False)
    done, lines = 0, []
    report(progress, 0, len(slices), f"predicting on {workers} worker(s)")
    try:
        for future in as_completed(futures):
            check(cancel)
            finished, warned = future.result()
            done += len(finished)
            lines += [line for line in warned if line not in lines]
            report(progress, done, len(slices), f"{done} of {len(slices)} slices")
    except (Cancelled, KeyboardInterrupt):
        client.cancel(futures)
        raise
    return lines
