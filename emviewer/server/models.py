"""The server's models: loaded once at start-up, chosen per job by name or by mode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..core.errors import InputError
from ..core.models.cache import ModelCache
from ..core.models.loading import LoadedModel
from ..core.models.registry import ModelEntry, models_for


class ModelStore:
    """Every installed model, loaded (and warmed up) now; jobs may name only these (never a file).

    Raises :class:`~emviewer.core.errors.InputError` when a model does not load.
    """

    def __init__(self, entries: Sequence[ModelEntry], cache: ModelCache | None = None) -> None:
        self.entries = list(entries)
        self.cache = cache if cache is not None else ModelCache()
        for entry in self.entries:  # at start, so the first job does not wait for loading
            self.cache.get(entry.path)

    def by_name(self, name: str) -> LoadedModel:
        for entry in self.entries:
            if entry.name == name:
                return self.cache.get(entry.path)
        known = ", ".join(e.name for e in self.entries) or "none installed"
        raise InputError(None, f"unknown model {name!r} (this server has: {known})")

    def choose(
        self, objects: Sequence[str], names: Mapping[str, Sequence[str]], mode: str
    ) -> dict[str, list[LoadedModel]]:
        """Models per object: the names asked for, else the mode's defaults."""
        chosen = {}
        for obj in objects:
            if names.get(obj):
                chosen[obj] = [self.by_name(name) for name in names[obj]]
                wrong = [m.name for m in chosen[obj] if m.card.object != obj]
                if wrong:
                    raise InputError(None, f"model {wrong[0]!r} does not segment {obj!r}")
            else:
                chosen[obj] = self.cache.get_all(models_for(obj, mode, self.entries))
        return chosen
