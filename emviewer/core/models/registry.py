"""Finds model cards: bundled ones in ``models/`` and the user's own in the user data folder."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .card import ModelCard


@dataclass(frozen=True)
class ModelEntry:
    """A model file with its validated card (DESIGN.md section 3) and where it came from."""

    name: str
    path: Path
    card: ModelCard
    bundled: bool


def read_card(model_path: Path) -> ModelCard:
    """The card beside ``model.keras`` (``model.json``), validated.

    Raises :class:`~emviewer.core.errors.InputError` when the card is missing, is not JSON,
    or has a bad field (the message names it).
    """
    card_path = model_path.with_suffix(".json")
    try:
        return ModelCard.read(card_path)
    except FileNotFoundError:
        raise InputError(model_path, f"no model card {card_path.name} beside the model") from None


def _scan(folder: Path, bundled: bool) -> list[ModelEntry]:
    if not folder.is_dir():
        return []
    entries = []
    for model_path in sorted(folder.rglob("*.keras")):
        if model_path.with_suffix(".json").exists():
            entries.append(ModelEntry(model_path.stem, model_path, read_card(model_path), bundled))
    return entries


def list_models(bundled_dir: Path, user_dir: Path | None = None) -> list[ModelEntry]:
    """Bundled models first, then user models, each sorted by path."""
    return _scan(bundled_dir, True) + (_scan(user_dir, False) if user_dir else [])


def find_model(name_or_path: str, entries: list[ModelEntry]) -> Path:
    """A registered model's file by name, or a ``.keras`` path as given."""
    for entry in entries:
        if entry.name == name_or_path:
            return entry.path
    path = Path(name_or_path)
    if path.suffix == ".keras":
        if not path.is_file():
            raise InputError(path, "no such model file")
        return path
    known = ", ".join(e.name for e in entries) or "none installed"
    raise InputError(None, f"unknown model {name_or_path!r} (known: {known}); give a registered name or a .keras file")


def models_for(object_key: str, mode: str, entries: list[ModelEntry]) -> list[Path]:
    """Default model files for an object: ``fast`` one model, ``accurate`` the ensemble.

    Cards say which modes they serve (``"modes": ["fast", "accurate"]``; bundled models
    do). Without such cards, ``fast`` takes the object's model with the best validation F1
    and ``accurate`` uses it too (with 16x test-time augmentation).
    """
    own = [e for e in entries if e.card.object == object_key]
    if not own:
        raise InputError(
            None,
            f"no {mode} model for {object_key!r} is installed; "
            "train one with 'emviewer train' or give --model FILE.keras",
        )
    chosen = [e.path for e in own if mode in e.card.modes]
    if mode == "accurate" and chosen:
        return chosen
    if mode == "fast" and chosen:
        return chosen[:1]
    fast = [e.path for e in own if "fast" in e.card.modes]
    best = max(own, key=lambda e: _f1_or_zero(e.card))
    return fast[:1] or [best.path]


def _f1_or_zero(card: ModelCard) -> float:
    f1 = card.figure("f1")
    return 0.0 if math.isnan(f1) else f1


def resolve_models(choices: dict, mode: str, entries: list[ModelEntry]) -> dict[str, list[Path]]:
    """Model files per object: the user's choice (name, path or comma list) or the mode's default."""
    files = {}
    for object_key, choice in choices.items():
        if choice:
            files[object_key] = [find_model(part.strip(), entries) for part in str(choice).split(",")]
        else:
            files[object_key] = models_for(object_key, mode, entries)
    return files
