"""The segmentation panel: object selector (show, colour, opacity, model), mode, Predict/Cancel."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.models.registry import ModelEntry
from ..core.objects import OBJECTS
from ..core.progress import carries_estimate
from .session import Session

AUTOMATIC = "automatic"


def card_tooltip(entry: ModelEntry) -> str:
    """The card's figures, shown when hovering a model in the picker."""
    card = entry.card
    lines = [
        f"{entry.name} ({'bundled' if entry.bundled else 'your model'})",
        f"trained on {card.trained_on or 'data its card does not name'}",
        f"{card.architecture or '?'}, {card.context}-slice context"
        + (f", slices taken at zoom {card.input_zoom:g}" if card.input_zoom != 1.0 else ""),
        f"validation F1 {card.figure('f1'):.3f}, IoU {card.figure('iou'):.3f}",
        f"threshold {card.threshold:.2f}",
        str(entry.path),
    ]
    return "\n".join(lines)


def picker_text(entry: ModelEntry) -> str:
    """A model as the picker lists it: its name and what it was trained on, when its card says."""
    trained_on = entry.card.trained_on
    return f"{entry.name} - {trained_on}" if trained_on else entry.name


class ObjectRow:
    """One object's controls: predict check box, colour swatch, show check box, opacity slider,
    model picker. Predicting and showing are separate: a Predict of nuclei leaves the
    mitochondria of an earlier run on screen."""

    def __init__(self, key: str, session: Session, models: list[ModelEntry]) -> None:
        kind = OBJECTS[key]
        self.key = key
        self.check = QCheckBox(kind.label)
        self.check.setChecked(key == "mito")
        self.check.setToolTip(f"predict {kind.label} at the next Predict")
        self.shown = QCheckBox("show")
        self.shown.setChecked(session.visible[key])
        self.shown.setToolTip(f"show the {kind.label} masks on the overlay")
        self.session = session
        self.swatch = QToolButton()
        self.swatch.setFixedSize(18, 18)
        self.swatch.setAutoRaise(False)
        self.swatch.setToolTip(f"colour of the {kind.label} overlay (click to change)")
        self.swatch.clicked.connect(self.choose_colour)
        self.colour_dialog: QColorDialog | None = None  # the open picker, kept so tests can drive it
        self.show_colour(session.colours[key])  # PredictPanel repaints it when the session's colours change
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(session.opacity[key] * 100))
        self.opacity.setToolTip(f"opacity of the {kind.label} overlay")
        self.model = QComboBox()
        # long "name - trained on" texts show in full in the list, not by widening the panel
        self.model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model.setMinimumContentsLength(16)
        self.model.view().setMinimumWidth(420)
        self.set_models(models)
        self.adapt = QToolButton()
        self.adapt.setText("Adapt...")
        self.adapt.setToolTip(f"Adapt this {kind.label} model to your corrected slices (in the Train tab)")
        self.shown.toggled.connect(lambda on: session.set_visible(key, on))
        self.opacity.valueChanged.connect(lambda v: session.set_opacity(key, v / 100))

    def show_colour(self, colour: tuple[int, int, int]) -> None:
        """Paint the swatch in ``colour`` (RGB 0-255)."""
        red, green, blue = colour
        self.swatch.setStyleSheet(f"background-color: rgb({red}, {green}, {blue}); border: 1px solid #444;")

    def choose_colour(self) -> QColorDialog:
        """Open the colour picker (not blocking; one per row, made on first use) at the current colour;
        the colour chosen goes to :meth:`Session.set_colour`."""
        if self.colour_dialog is None:
            self.colour_dialog = QColorDialog(self.swatch)
            self.colour_dialog.setWindowTitle(f"{OBJECTS[self.key].label} overlay colour")
            self.colour_dialog.colorSelected.connect(self._on_colour_selected)
        self.colour_dialog.setCurrentColor(QColor(*self.session.colours[self.key]))
        self.colour_dialog.open()
        return self.colour_dialog

    def _on_colour_selected(self, colour: QColor) -> None:
        self.session.set_colour(self.key, (colour.red(), colour.green(), colour.blue()))

    def set_models(self, models: list[ModelEntry]) -> None:
        """Fill the picker with this object's models, keeping the current choice if it is still there."""
        current = self.model.currentData()
        self.model.clear()
        self.model.addItem(AUTOMATIC, None)
        for entry in models:
            if entry.card.object == self.key:
                self.model.addItem(picker_text(entry), str(entry.path))
                self.model.setItemData(self.model.count() - 1, card_tooltip(entry), Qt.ItemDataRole.ToolTipRole)
        self.model.setCurrentIndex(max(0, self.model.findData(current)))

    def chosen_model(self) -> Path | None:
        data = self.model.currentData()
        return Path(data) if data else None


class PredictPanel(QWidget):
    """Emits ``predictRequested`` with ``{object: model path or None}`` and the mode (and
    ``predictRegionRequested`` likewise for "Predict region in view"), and ``adaptRequested``
    with an object key when its "Adapt..." button is pressed."""

    predictRequested = Signal(dict, str)
    predictRegionRequested = Signal(dict, str)  # the same, for the region in view of the current slice
    cancelRequested = Signal()
    adaptRequested = Signal(str)

    def __init__(self, session: Session, models: list[ModelEntry], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        box = QGroupBox("Objects")
        grid = QGridLayout(box)
        self.rows = {key: ObjectRow(key, session, models) for key in OBJECTS}
        for i, row in enumerate(self.rows.values()):
            grid.addWidget(row.check, 2 * i, 0)
            grid.addWidget(row.swatch, 2 * i, 1)
            grid.addWidget(row.shown, 2 * i, 2)
            grid.addWidget(row.opacity, 2 * i, 3)
            grid.addWidget(row.model, 2 * i + 1, 0, 1, 4)
            grid.addWidget(row.adapt, 2 * i + 1, 4)
            row.adapt.clicked.connect(lambda checked=False, key=row.key: self.adaptRequested.emit(key))
        self.mode = QComboBox()
        self.mode.addItem("fast: one model", "fast")
        self.mode.addItem("accurate: ensemble + 16x augmentation", "accurate")
        self.keep_long = QCheckBox("Keep very long objects")
        self.keep_long.setToolTip(
            "Models for objects of bounded size (mitochondria) drop predicted objects over 1.5x the longest one\n"
            "they were trained on (e.g. myelin sheaths). "
            "Tick this for images with much finer pixels than the training data."
        )
        self.predict_button = QPushButton("Predict")
        self.predict_button.setToolTip("Segment the checked objects in the whole stack")
        self.region_button = QPushButton("Predict region in view")
        self.region_button.setToolTip(
            "A quick look: segment the checked objects only in the part of the current slice on screen"
        )
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.eta = QLabel("")
        # stays until the next Predict: the status bar's line is easily missed on a long run
        self.domain_note = QLabel("")
        self.domain_note.setWordWrap(True)
        self.domain_note.setStyleSheet("QLabel { background: #fff4ce; color: #4a3800; padding: 4px; }")
        self.domain_note.setVisible(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.predict_button)
        buttons.addWidget(self.cancel_button)
        layout = self._layout = QVBoxLayout(self)
        layout.addWidget(box)
        layout.addWidget(QLabel("Mode"))
        layout.addWidget(self.mode)
        layout.addWidget(self.keep_long)
        layout.addLayout(buttons)
        layout.addWidget(self.region_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.eta)
        layout.addWidget(self.domain_note)
        layout.addStretch(1)
        self.predict_button.clicked.connect(self._on_predict_clicked)
        self.region_button.clicked.connect(self._on_region_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        session.displayChanged.connect(self._show_display)  # e.g. colours restored from the settings

    def _show_display(self) -> None:
        """Swatches, show boxes and opacity sliders follow the session (changed here or elsewhere)."""
        for key, row in self.rows.items():
            row.show_colour(self.session.colours[key])
            with QSignalBlocker(row.shown):
                row.shown.setChecked(self.session.visible.get(key, True))
            with QSignalBlocker(row.opacity):
                row.opacity.setValue(round(self.session.opacity[key] * 100))

    def add_section(self, widget: QWidget) -> None:
        """Put ``widget`` under the object selector (e.g. the offline / online switch)."""
        self._layout.insertWidget(1, widget)

    def set_models(self, models: list[ModelEntry]) -> None:
        for row in self.rows.values():
            row.set_models(models)

    def selected_objects(self) -> dict:
        return {key: row.chosen_model() for key, row in self.rows.items() if row.check.isChecked()}

    def select_only(self, keys: list[str]) -> None:
        for key, row in self.rows.items():
            row.check.setChecked(key in keys)

    def _on_predict_clicked(self) -> None:
        objects = self.selected_objects()
        if objects:
            self.predictRequested.emit(objects, self.mode.currentData())

    def _on_region_clicked(self) -> None:
        objects = self.selected_objects()
        if objects:
            self.predictRegionRequested.emit(objects, self.mode.currentData())

    def _on_cancel_clicked(self) -> None:
        # Said at once: the job stops at its next model call, up to a couple of seconds later.
        self.cancel_button.setText("Cancelling...")
        self.cancel_button.setEnabled(False)
        self.cancelRequested.emit()

    def set_running(self, running: bool) -> None:
        self.predict_button.setEnabled(not running)
        self.region_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.cancel_button.setText("Cancel")
        if running:
            self.progress.setValue(0)
            self.eta.setText("starting (loading models; on first use each is converted for this computer)...")
            self.domain_note.clear()
            self.domain_note.setVisible(False)

    def show_domain_warning(self, line: str) -> None:
        """Keep a line about the input (e.g. unlike a model's training data) under the progress,
        one per object, until the next Predict; the object's Adapt... button is the way out."""
        lines = [text for text in self.domain_note.text().split("\n") if text]
        self.domain_note.setText("\n".join([*lines, f"Warning: {line}"]))
        self.domain_note.setVisible(True)

    def show_failed(self) -> None:
        """A failed run: the bar is emptied (no 100 % beside "failed", e.g. after an upload)."""
        self.set_running(False)
        self.progress.reset()
        self.eta.setText("failed")

    def show_progress(self, done: int, total: int, message: str, seconds_left: float) -> None:
        """``seconds_left`` (the job's own guess, -1 unknown) is shown when ``message`` has no estimate."""
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        left = f", about {seconds_left:.0f} s left" if seconds_left >= 0 and not carries_estimate(message) else ""
        self.eta.setText(f"{message}{left}")
