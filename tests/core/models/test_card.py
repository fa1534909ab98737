"""The typed model card: the bundled cards validate, bad fields are named, unknown keys survive."""

from __future__ import annotations

import json
import math

import pytest

from emviewer import config
from emviewer.core.errors import InputError
from emviewer.core.models.card import DEFAULT_CONTEXT, DEFAULT_THRESHOLD, ModelCard
from emviewer.core.models.registry import list_models, read_card


def _write(folder, name, card) -> object:
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / f"{name}.keras"
    model.write_bytes(b"weights")
    model.with_suffix(".json").write_text(json.dumps(card))
    return model


def test_every_bundled_card_validates_and_dumps_back_unchanged():
    cards = sorted(config.bundled_models_dir().rglob("*.json"))
    assert len(cards) >= 8, "the bundled cards are missing"
    for path in cards:
        raw = json.loads(path.read_text())
        card = read_card(path.with_suffix(".keras"))
        assert card.to_json() == raw, path.name
        assert card.object in ("mito", "membrane", "nuclei") and card.context in (1, 3, 5)
        assert 0 < card.threshold < 1 and card.threshold_for(16) == raw["thresholds"]["16"]
        assert card.figure("f1") == raw["validation"]["f1"] and len(card.sha256) == 64


def test_unknown_keys_round_trip_and_stay_readable(tmp_path):
    raw = {
        "object": "mito",
        "notes": "kept as written",
        "initialised_from": "a sentence, not a record",
        "validation": {"f1": 0.8, "data": "pooled"},
        "software": {"keras": "3"},
    }
    card = read_card(_write(tmp_path, "m", raw))
    assert card.to_json() == raw  # no key dropped, no default added
    assert card.notes == "kept as written" and card.validation.data == "pooled"
    assert json.loads(json.dumps(card.to_json())) == raw


def test_defaults_live_in_the_card():
    card = ModelCard(object="mito")
    assert (card.context, card.threshold) == (DEFAULT_CONTEXT, DEFAULT_THRESHOLD) == (1, 0.5)
    assert card.threshold_for(16) == 0.5 and card.modes == [] and card.max_object_length_px is None
    assert math.isnan(card.figure("f1"))
    tuned = ModelCard(object="mito", threshold=0.4, thresholds={"1": 0.4, "16": 0.3})
    assert (tuned.threshold_for(1), tuned.threshold_for(8), tuned.threshold_for(16)) == (0.4, 0.3, 0.3)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"context": 2}, "context"),
        ({"context": 0}, "context"),
        ({"context": "three"}, "context"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": 0}, "threshold"),
        ({"thresholds": {"16": -0.1}}, "thresholds.16"),
        ({"modes": ["fastest"]}, "modes.0"),
        ({"input_reference": [0.9, 0.1]}, "input_reference"),
        ({"sha256": "not a hash"}, "sha256"),
        ({"object": ""}, "object"),
    ],
)
def test_a_bad_field_is_an_input_error_naming_it(tmp_path, change, field):
    model = _write(tmp_path, "bad", {"object": "mito", **change})
    with pytest.raises(InputError, match=rf"bad\.json: invalid model card: field '{field}': ") as raised:
        read_card(model)
    assert "\n" not in str(raised.value)


def test_a_card_without_object_or_not_json_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"field 'object': field required"):
        read_card(_write(tmp_path, "nameless", {"context": 1}))
    model = _write(tmp_path, "broken", {})
    model.with_suffix(".json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_card(model)
    with pytest.raises(InputError, match="no model card lonely.json"):
        read_card(tmp_path / "lonely.keras")


def test_listing_models_validates_their_cards(tmp_path):
    _write(tmp_path / "mito", "good", {"object": "mito", "modes": ["fast"]})
    (entry,) = list_models(tmp_path)
    assert isinstance(entry.card, ModelCard) and entry.card.modes == ["fast"]
    _write(tmp_path / "mito", "odd", {"object": "mito", "context": 4})
    with pytest.raises(InputError, match=r"odd\.json: invalid model card: field 'context': must be odd"):
        list_models(tmp_path)
