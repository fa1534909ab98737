"""What a Predict runs: the job bodies for this computer and for a server, and the record of
how each object was predicted (kept by the session for the provenance of exports)."""

from __future__ import annotations

from pathlib import Path

from ..core.models.cache import ModelCache
from ..core.models.registry import read_card
from ..core.predict import mode_tta
from ..core.volume import Volume, crop_yx, map_slices

#: ``where`` of a run on this computer in :func:`run_record`.
THIS_COMPUTER = "this computer"
#: Slices read on each side of the one predicted by "Predict region in view" (the widest bundled
#: models see 5 slices).
REGION_CONTEXT = 2


def region_volume(volume: Volume, z: int, box: tuple[int, int, int, int]) -> tuple[Volume, int]:
    """What "Predict region in view" predicts: the rectangle ``box = (y0, y1, x0, x1)`` of slice
    ``z`` and of up to :data:`REGION_CONTEXT` slices on each side, as a lazy Volume (only those
    pixels are read), and the index of slice ``z`` in it. The intensity levels the models use are
    then those of the region."""
    first = max(0, z - REGION_CONTEXT)
    last = min(len(volume), z + REGION_CONTEXT + 1)
    return map_slices(crop_yx(volume, box), indices=range(first, last)), z - first


def device_text() -> str:
    """What computes, for the status bar; loads the ML backend on first call when Keras runs
    the models (a bad ``$EMVIEWER_RUNTIME`` is reported when Predict is pressed)."""
    import os

    from ..core.backend import device_summary
    from ..core.errors import InputError
    from ..core.models.runtime import choose_runtime, runtime_label

    try:
        runtime = choose_runtime()[0]
    except InputError:
        runtime = "keras"
    if runtime != "keras":
        return f"{runtime_label(runtime)} on CPU ({os.cpu_count()} cores)"
    info = device_summary()
    return f"Keras {info['keras']} ({info['backend']}) on {', '.join(info['devices'])}"


class LocalPredictors:
    """Predictors for this computer, one per choice of models, over one :class:`ModelCache`:
    each model file is loaded and warmed up once per app session, so a Predict pressed while
    the default model is still loading waits for it instead of loading it a second time."""

    def __init__(self) -> None:
        self.cache = ModelCache()
        self.made: dict = {}  # (files, mode, keep_long_objects) -> LocalPredictor; cheap, models are cached

    def get(self, files: dict, mode: str, keep_long_objects: bool = False):
        """A predictor for ``{object: [model paths]}`` in ``mode`` (call off the GUI thread)."""
        from ..core.predict import predictor_for

        key = (tuple((obj, tuple(map(str, paths))) for obj, paths in files.items()), mode, keep_long_objects)
        if key not in self.made:
            self.made[key] = predictor_for(files, mode, keep_long_objects=keep_long_objects, cache=self.cache)
        return self.made[key]


def offline_work(
    predictors: LocalPredictors, files: dict, volume: Volume, mode: str, keep_long_objects: bool, slices=None
):
    """The job body for this computer (see :class:`~.workers.PredictionJob`); ``slices`` (0-based,
    default all) are those predicted."""

    def work(progress, cancel, emit, show_device, warn):
        predictor = predictors.get(files, mode, keep_long_objects=keep_long_objects)
        show_device(device_text())  # also after an online run, which showed the server
        results = predictor.iter_predict(volume, slices, progress=progress, cancel=cancel, on_warning=warn)
        for result in results:
            emit(result)

    return work


def online_work(url: str, token: str, objects: list, volume: Volume, mode: str, keep_long_objects: bool, slices=None):
    """The job body for online mode: the server's default models for each object."""

    def work(progress, cancel, emit, show_device, warn):  # the server checks its own models' domains
        from ..remote.client import RemotePredictor

        predictor = RemotePredictor(url, token, objects, mode=mode, keep_long_objects=keep_long_objects)
        health = predictor.health()
        show_device(f"online: {url} ({health.backend} on {health.device})")
        for result in predictor.iter_predict(volume, slices, progress=progress, cancel=cancel, on_warning=warn):
            emit(result)

    return work


def run_record(mode: str, where: str, files: list[Path] | None = None) -> dict:
    """How an object is predicted: ``mode``, test-time variants ``tta``, ``where`` it runs and,
    for local models, each model's name, SHA-256 and threshold for that many variants (from
    its card). A server's models are chosen there: ``models`` is then empty."""
    tta = mode_tta(mode)
    models = []
    for path in files or []:
        card = read_card(Path(path))
        models.append({"name": Path(path).stem, "sha256": card.sha256, "threshold": card.threshold_for(tta)})
    return {"mode": mode, "tta": tta, "where": where, "models": models}
