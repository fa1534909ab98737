"""The server's models: loaded once at start-up, chosen per job by name or by mode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..core.errors import InputError
from ..core.models.loading import LoadedModel, load_model
from ..core.models.registry import ModelEntry, models_for


class ModelStore:
    """Every installed model, loaded; jobs may name only these (never a file)."""

    def __init__(self, entries: Sequence[ModelEntry]) -> None:
        self.entries = list(entries)
        self._loaded = {entry.path: load_model(entry.path) for entry in self.entries}

    def by_name(self, name: str) -> LoadedModel:
        for entry in self.entries:
            if entry.name == name:
                return self._loaded[entry.path]
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
                wrong = [m.name for m in chosen[obj] if (m.card or {}).get("object", obj) != obj]
                if wrong:
                    raise InputError(None, f"model {wrong[0]!r} does not segment {obj!r}")
            else:
                chosen[obj] = [self._loaded[path] for path in models_for(obj, mode, self.entries)]
        return chosen
