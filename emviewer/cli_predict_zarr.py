"""``emviewer predict -o OUT.zarr``: into an OME-Zarr store, resumable, on one machine or a dask cluster.

The store is :mod:`emviewer.core.prediction_zarr`; the cluster, :mod:`emviewer.core.distributed`.
"""

from __future__ import annotations

import sys
from pathlib import Path


def predict_to_store(args, volume, predictor, record: dict, files, progress) -> int:
    """Predict the slices of ``volume`` not yet in the store ``args.output`` (all of them
    without ``--resume``) and print one line on what was written. ``files`` are each object's
    model files (None online); with ``--cluster`` or ``--scheduler`` the workers predict."""
    from .core.errors import InputError
    from .core.prediction_output import write_predictions
    from .core.prediction_zarr import PredictionStore

    distributed = bool(args.cluster or args.scheduler)
    if distributed and files is None:
        raise InputError(args.server, "--cluster and --scheduler run the models on the cluster: leave out --server")
    store = PredictionStore(
        Path(args.output), args.object, volume.shape, args.save_probabilities, record, volume.pixel_size,
        resume=args.resume,
    )  # fmt: skip
    todo = [z for z in range(len(volume)) if z not in store.done]
    if store.done:
        print(f"resuming {args.output}: {len(store.done)} of {len(volume)} slices already written")
    try:
        if distributed:
            _on_cluster(args, volume, predictor, files, todo, progress)
            store.done = store.marked_done()  # the workers' slices
            store.finish()
        else:  # a local predictor gives bands of rows (flat memory for huge slices), a server slices
            stream = getattr(predictor, "iter_bands", predictor.iter_predict)
            write_predictions(stream(volume, slices=todo, progress=progress) if todo else [], store)
    except BaseException:
        done = len(store.marked_done())
        print(f"stopped: {done} of {len(volume)} slices are in {args.output}; --resume continues", file=sys.stderr)
        raise
    print(f"wrote {args.output} ({len(store.done)} of {len(volume)} slices)")
    return 0


def _on_cluster(args, volume, predictor, files, todo, progress) -> None:
    from .cli_args import read_options
    from .core.distributed import BlockJob, connect, predict_on_cluster
    from .core.predict import measured_stack

    job = BlockJob(
        args.input,
        {obj: [str(f) for f in paths] for obj, paths in files.items()},
        measured_stack(volume),  # once, here: every worker sees the same contrast
        str(Path(args.output).resolve()),
        args.mode,
        args.tta,
        args.keep_long_objects,
        read_options(args),
        runtime=next(m.runtime for ms in predictor.models.values() for m in ms),  # as the client converted
    )
    with connect(args.cluster, args.scheduler) as client:
        for line in predict_on_cluster(client, job, todo, progress):
            print(f"warning: {line}")
