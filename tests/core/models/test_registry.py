"""Model cards found on disk and the default choice of models per object and mode."""

from __future__ import annotations

import json

import pytest

from emviewer.core.errors import InputError
from emviewer.core.models.registry import find_model, list_models, models_for


def _model(folder, name, **card):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.keras").write_bytes(b"weights")
    (folder / f"{name}.json").write_text(json.dumps(card))


def test_modes_from_cards_then_best_validation(tmp_path):
    bundled, user = tmp_path / "bundled", tmp_path / "user"
    _model(bundled / "mito", "m1", object="mito", context=1, modes=["fast", "accurate"], validation={"f1": 0.8})
    _model(bundled / "mito", "m3", object="mito", context=3, modes=["accurate"], validation={"f1": 0.85})
    _model(user / "nuclei", "n_a", object="nuclei", validation={"f1": 0.7})
    _model(user / "nuclei", "n_b", object="nuclei", validation={"f1": 0.9})
    (user / "stray.keras").write_bytes(b"no card, not listed")
    entries = list_models(bundled, user)
    assert [e.name for e in entries] == ["m1", "m3", "n_a", "n_b"] and [e.bundled for e in entries] == [
        True,
        True,
        False,
        False,
    ]
    assert [p.stem for p in models_for("mito", "fast", entries)] == ["m1"]
    assert [p.stem for p in models_for("mito", "accurate", entries)] == ["m1", "m3"]
    assert [p.stem for p in models_for("nuclei", "fast", entries)] == ["n_b"]
    assert [p.stem for p in models_for("nuclei", "accurate", entries)] == ["n_b"]
    with pytest.raises(InputError, match="no fast model for 'membrane'"):
        models_for("membrane", "fast", entries)
    assert find_model("n_a", entries).name == "n_a.keras"
    with pytest.raises(InputError, match="unknown model"):
        find_model("nothing", entries)
