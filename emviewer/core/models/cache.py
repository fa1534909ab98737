"""Loaded models kept for the life of an app or a server: each file loaded once, warmed up."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from .loading import LoadedModel, load_model
from .runtime import choose_runtime


class ModelCache:
    """Models by file, each loaded (and warmed up) once, safe to share between threads.

    One lock covers loading and warming up: a caller asking for a model that another thread
    is loading waits for it instead of loading it a second time, and Keras builds one model at
    a time. Models already loaded are returned without waiting.

    Parameters
    ----------
    warm_up
        Run each model once on tiny inputs after loading (see :meth:`LoadedModel.warm_up`),
        so that the first real tile is not slow.
    runtime
        What runs the models: one of :data:`~.runtime.RUNTIMES`; ``None`` reads
        ``$EMVIEWER_RUNTIME`` (default ``auto``: see :func:`~.runtime.choose_runtime`).
    """

    def __init__(self, warm_up: bool = True, runtime: str | None = None) -> None:
        self._warm_up = warm_up
        self._runtime = runtime
        self._models: dict[Path, LoadedModel] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(path: str | Path) -> Path:
        return Path(path).resolve()

    def get(self, path: str | Path) -> LoadedModel:
        """The model in ``path`` (``.keras`` with its card beside it), loaded on first use.

        Raises :class:`~emviewer.core.errors.InputError` as :func:`~.loading.load_model` and
        :func:`~.runtime.choose_runtime` do; a file that failed is tried again on the next call.
        """
        key = self._key(path)
        model = self._models.get(key)
        if model is not None:
            return model
        with self._lock:
            model = self._models.get(key)  # another thread may have loaded it meanwhile
            if model is None:
                model = load_model(path, runtime=choose_runtime(self._runtime)[0])
                if self._warm_up:
                    model.warm_up()
                self._models[key] = model
            return model

    def get_all(self, paths: Iterable[str | Path]) -> list[LoadedModel]:
        """:meth:`get` for each path, in order."""
        return [self.get(path) for path in paths]

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (str, Path)) and self._key(path) in self._models

    def __len__(self) -> int:
        return len(self._models)
