"""The model card: the JSON file beside each ``model.keras`` that says how to use the model.

:class:`ModelCard` is the card's one typed form. A card is validated once, when it is read
(:func:`emviewer.core.models.registry.read_card`) or written (:func:`emviewer.core.train.train`);
everyone else reads its attributes. Keys this class does not know are kept, so a card read and
dumped again with :meth:`ModelCard.to_json` holds everything the file held.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import InputError

#: Slices of context a card without ``context`` is taken to read (the slice itself).
DEFAULT_CONTEXT = 1
#: Decision threshold of a card without ``threshold``.
DEFAULT_THRESHOLD = 0.5

#: A probability threshold strictly between 0 and 1.
Threshold = Annotated[float, Field(gt=0, lt=1)]
Mode = Literal["fast", "accurate"]


class _Part(BaseModel):
    """Unknown keys are kept, so the card dumps back to what was read."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Metrics(_Part):
    """Validation figures: mean per-slice scores at ``threshold`` (each in [0, 1])."""

    f1: float | None = None
    precision: float | None = None
    recall: float | None = None
    iou: float | None = None
    threshold: Threshold | None = None


class TrainingData(_Part):
    """Where the training images and labels came from (paths with slice ranges, as text)."""

    images: list[str] = []
    labels: list[str] = []
    foreground: list[int | float] | None = None
    invert: bool | None = None
    pair_by: str | None = None


class ModelCard(_Part):
    """A model's card (DESIGN.md section 3). Only ``object`` is required.

    Attributes the code reads are typed; every other key stays as an extra attribute. Raises
    :class:`~emviewer.core.errors.InputError` (through :meth:`from_json`) naming the first bad field.
    """

    object: str = Field(min_length=1, description="object key the model segments, e.g. 'mito'")
    name: str | None = None
    architecture: str | None = None
    context: int = Field(DEFAULT_CONTEXT, ge=1, description="input slices, odd: 1, 3 or 5")
    width: int | None = Field(None, gt=0)
    depth: int | None = Field(None, gt=0)
    tile: int | None = Field(None, gt=0, description="training tile side, px")
    threshold: Threshold = DEFAULT_THRESHOLD
    thresholds: dict[str, Threshold] = Field(
        default_factory=dict, description="threshold per number of test-time variants, e.g. {'1': t, '16': t16}"
    )
    input_reference: tuple[float, float] | None = Field(
        None, description="model-input levels of the tissue's 1st / 99th percentiles (see core.intensity)"
    )
    modes: list[Mode] = Field(default_factory=list, description="modes whose default this model is")
    max_object_length_px: float | None = Field(
        None, gt=0, description="longer objects are removed (px at the model's input_zoom); None: no limit"
    )
    input_zoom: float = Field(
        1.0, ge=0.25, le=2.0, description="slices are resized by this before the network (0.5: half the px per side)"
    )
    object_width_px: float | None = Field(
        None, gt=0, description="median width of the labelled objects the model learnt, px at its input (core.zoom)"
    )
    precision: str | None = Field(
        None, description="dtype policy it was trained in, and its figures measured in: 'float32', 'mixed_bfloat16'"
    )
    validation: Metrics | None = None
    validation_tta16: Metrics | None = None
    training_data: TrainingData | None = None
    epochs: int | None = Field(None, ge=0)
    best_epoch: int | None = Field(None, ge=0)
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    training_domain: dict | None = Field(
        None, description="statistics of the training slices as the model saw them (see core.domain)"
    )
    trained_on: str | None = Field(None, description="the training data in one line, e.g. 'HeLa SBF-SEM, 10 nm'")

    @field_validator("context")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("must be odd (the slice and as many neighbours on each side)")
        return value

    @field_validator("input_reference")
    @classmethod
    def _rising(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] < value[1]:
            raise ValueError("the 1st percentile's level must lie below the 99th's")
        return value

    @classmethod
    def from_json(cls, data: Any, card_path: str | Path | None = None) -> ModelCard:
        """Validate a card's parsed JSON; raises ``InputError(card_path, reason naming the field)``."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InputError(card_path, f"invalid model card: {_reason(exc)}") from None

    @classmethod
    def read(cls, card_path: Path) -> ModelCard:
        """Read and validate a card file; raises ``InputError`` for bad JSON or a bad field.
        A missing file raises ``FileNotFoundError``."""
        try:
            data = json.loads(card_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(card_path, f"model card is not valid JSON ({exc})") from None
        return cls.from_json(data, card_path)

    def to_json(self) -> dict[str, Any]:
        """The card as JSON data: the keys it was made from (unknown ones included), no defaults added."""
        return self.model_dump(mode="json", exclude_unset=True)

    @property
    def reference(self) -> tuple[float, float]:
        """``input_reference``, or the default levels for a card without them (see :mod:`..intensity`)."""
        from ..intensity import DEFAULT_REFERENCE

        return self.input_reference or DEFAULT_REFERENCE

    def threshold_for(self, tta: int) -> float:
        """The threshold for this many test-time variants: averaging variants makes
        probabilities less extreme, so accurate mode has its own (``"thresholds": {"16": t}``)."""
        if tta > 1 and (str(tta) in self.thresholds or "16" in self.thresholds):
            return self.thresholds.get(str(tta), self.thresholds["16"])
        return self.threshold

    def figure(self, key: str, tta16: bool = False) -> float:
        """A validation figure (``"f1"``, ``"iou"``, ...), NaN when the card has none."""
        metrics = self.validation_tta16 if tta16 else self.validation
        value = getattr(metrics, key, None) if metrics is not None else None
        return float("nan") if value is None else float(value)


def _reason(exc: ValidationError) -> str:
    """The first error of a validation, on one line: ``field 'a.b': message (and N more)``."""
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "card"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    message = first["msg"].removeprefix("Value error, ")
    return f"field {where!r}: {message[:1].lower()}{message[1:]}{more}"
