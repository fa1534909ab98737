"""The evaluate tab: the session's predicted masks scored against expert labels, and a robustness curve.

Scoring and the robustness study run in background jobs; the tab shows a per-slice F1 line
chart, a table of precision / recall / F1 / IoU per slice and their mean, and on demand the
F1 as salt-and-pepper noise grows.
"""

from __future__ import annotations

from collections.abc import Callable

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import InputError
from ...core.evaluate import evaluate_masks, robustness_against_labels
from ...core.objects import OBJECTS, colour_of
from ...core.predict import Predictor
from ...core.validate import parse_values
from ..session import Session
from ..workers import Job, start
from .train_widgets import PAIR_CHOICES

COLUMNS = ("slice", "precision", "recall", "F1", "IoU")


def _plot(title: str, x_label: str) -> tuple[pg.PlotWidget, pg.PlotDataItem]:
    widget = pg.PlotWidget(background="w", title=title)
    widget.setLabel("bottom", x_label)
    widget.setLabel("left", "F1")
    widget.setYRange(0, 1.05)
    widget.showGrid(x=True, y=True, alpha=0.3)
    return widget, widget.plot([], [], symbol="o", symbolSize=7)


def _style(key: str) -> dict:
    """Line and symbol in the object's colour, as in the viewer's overlay."""
    colour = colour_of(key)
    return {"pen": pg.mkPen(colour, width=2), "symbolBrush": colour, "symbolPen": colour}


class EvaluateTab(QWidget):
    """Compare the predicted masks of one object with a folder of labels.

    Parameters
    ----------
    session
        The app state: the open volume and its per-slice masks (read only).
    predictor_factory
        ``predictor_factory(object_key) -> Predictor`` for the robustness study, called in
        the background job; ``None`` disables the Robustness button.
    """

    evaluationFinished = Signal(dict)  # Evaluation.as_dict(): per_image and mean
    evaluationFailed = Signal(str)
    robustnessFinished = Signal(list)  # RobustnessPoint per noise level
    robustnessFailed = Signal(str)

    def __init__(
        self,
        session: Session,
        predictor_factory: Callable[[str], Predictor] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.session, self.predictor_factory = session, predictor_factory
        self.job: Job | None = None
        self.running = False
        self._metrics: dict | None = None
        self._build()
        self.browse_button.clicked.connect(self._on_browse_clicked)
        self.evaluate_button.clicked.connect(self.evaluate)
        self.robustness_button.clicked.connect(self.run_robustness)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        session.volumeChanged.connect(self._on_volume_changed)
        session.masksChanged.connect(self._on_masks_changed)
        self._on_masks_changed(-1)
        self._set_running(False)

    def _build(self) -> None:
        self.labels_edit = QLineEdit(placeholderText="folder (or stack) of label images")
        self.browse_button = QPushButton("Browse...")
        self.foreground_edit = QLineEdit(placeholderText="e.g. 2 or 1,2 (empty: the larger value)")
        self.invert_check = QCheckBox("invert (object is the background value)")
        self.pair_box = QComboBox()
        self.pair_box.setToolTip(
            "How label files meet the stack's slices: by the number in their names, "
            "or by position (same count, same order)"
        )
        for text, value in PAIR_CHOICES:
            self.pair_box.addItem(text, value)
        self.object_box = QComboBox()
        self.evaluate_button, self.robustness_button, self.cancel_button = (
            QPushButton("Evaluate"),
            QPushButton("Robustness"),
            QPushButton("Cancel"),
        )
        self.robustness_button.setToolTip("F1 as salt-and-pepper noise grows (runs the model several times)")
        self.progress, self.status = QProgressBar(), QLabel("")
        grid = QGridLayout()  # narrow: one control per row, the panel sits beside the images
        rows: list[tuple[str, list[QWidget]]] = [
            ("Labels", [self.labels_edit, self.browse_button]),
            ("Foreground", [self.foreground_edit]),
            ("", [self.invert_check]),
            ("Pair by", [self.pair_box]),
            ("Object", [self.object_box]),
        ]
        for row, (label, widgets) in enumerate(rows):
            grid.addWidget(QLabel(label), row, 0)
            for column, widget in enumerate(widgets, 1):
                grid.addWidget(widget, row, column)
        buttons = QHBoxLayout()
        for button in (self.evaluate_button, self.robustness_button, self.cancel_button):
            buttons.addWidget(button)
        grid.addLayout(buttons, 5, 0, 1, 3)
        self.f1_plot, self.f1_curve = _plot("F1 per slice", "slice")
        self.robustness_plot, self.robustness_line = _plot("Robustness", "salt-and-pepper noise (% of pixels)")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        charts = QVBoxLayout()  # stacked: the panel stays narrow beside the images
        charts.addWidget(self.f1_plot)
        charts.addWidget(self.robustness_plot)
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(charts, 2)
        layout.addWidget(self.table, 1)

    def last_metrics(self) -> dict | None:
        """The last evaluation as ``{"per_image": [...], "mean": {...}}``, or ``None``."""
        return self._metrics

    # ------------------------------------------------------------------ jobs

    def _choices(self) -> tuple[str, list[float] | None, bool, str, str]:
        if self.session.volume is None:
            raise InputError(None, "open a stack and predict before evaluating")
        folder = self.labels_edit.text().strip()
        if not folder:
            raise InputError(None, "choose the folder of labels to compare with")
        return (
            folder,
            parse_values(self.foreground_edit.text()),
            self.invert_check.isChecked(),
            self.object_box.currentData(),
            self.pair_box.currentData(),
        )

    def evaluate(self) -> None:
        """Score the chosen object's masks against the labels, in a background job."""
        try:
            folder, foreground, invert, key, pair_by = self._choices()
            masks = dict(self.session.masks.get(key, {}))
            if not masks:
                raise InputError(
                    None, f"there are no {OBJECTS[key].label if key in OBJECTS else key} masks yet: predict first"
                )
        except InputError as exc:
            self._on_evaluation_failed(str(exc))
            return
        volume = self.session.volume
        assert volume is not None, "_choices raises InputError when no stack is open"

        def work(progress, cancel, _emit):
            return key, evaluate_masks(masks, volume, folder, foreground, invert, progress, cancel, pair_by)

        self._start(work, self._on_evaluation_finished, self._on_evaluation_failed)

    def run_robustness(self) -> None:
        """Predict the labelled slices at growing salt-and-pepper noise and plot F1 against it."""
        try:
            folder, foreground, invert, key, pair_by = self._choices()
            if self.predictor_factory is None:
                raise InputError(None, "no model is available for the robustness study")
        except InputError as exc:
            self._on_robustness_failed(str(exc))
            return
        volume, factory = self.session.volume, self.predictor_factory
        assert volume is not None, "_choices raises InputError when no stack is open"

        def work(progress, cancel, _emit):
            return key, robustness_against_labels(
                factory(key), volume, folder, key, foreground, invert, progress, cancel, pair_by
            )

        self._start(work, self._on_robustness_finished, self._on_robustness_failed)

    def _start(self, work, on_finished, on_failed) -> None:
        if self.running:
            return
        self.job = Job(work)
        self.job.signals.progressed.connect(self._on_progressed)
        self.job.signals.finished.connect(on_finished)
        self.job.signals.failed.connect(on_failed)
        self.job.signals.cancelled.connect(self._on_cancelled)
        self._set_running(True)
        start(self.job)

    def _set_running(self, running: bool) -> None:
        self.running = running
        ready = not running and self.session.volume is not None
        self.evaluate_button.setEnabled(ready)
        self.robustness_button.setEnabled(ready and self.predictor_factory is not None)
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setValue(0)
            self.status.setText("working...")

    # ------------------------------------------------------------------ results

    def _on_progressed(self, done: int, total: int, message: str, _seconds_left: float) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self.status.setText(message)

    def _on_evaluation_finished(self, result) -> None:
        self._set_running(False)
        key, evaluation = result
        slices = evaluation.slices
        self._metrics = metrics = evaluation.as_dict()
        mean = metrics["mean"]
        self.f1_curve.setData(slices, [row["f1"] for row in metrics["per_image"]], **_style(key))
        self.f1_plot.setTitle(f"F1 per slice (mean {mean['f1']:.3f})")
        self._fill_table(metrics["per_image"] + [dict(mean, name="mean")])
        unpaired = (
            f"; {len(evaluation.unpaired_predictions)} predicted slices have no label"
            if evaluation.unpaired_predictions
            else ""
        )
        self.status.setText(f"{len(slices)} slices scored, mean F1 {mean['f1']:.3f}{unpaired}")
        self.evaluationFinished.emit(self._metrics)

    def _fill_table(self, rows: list[dict]) -> None:
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            cells = [row["name"]] + [f"{row[k]:.3f}" for k in ("precision", "recall", "f1", "iou")]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                horizontal = Qt.AlignmentFlag.AlignLeft if c == 0 else Qt.AlignmentFlag.AlignRight
                item.setTextAlignment(horizontal | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)

    def _on_evaluation_failed(self, message: str) -> None:
        self._set_running(False)
        self.status.setText(message)
        self.evaluationFailed.emit(message)

    def _on_robustness_finished(self, result) -> None:
        self._set_running(False)
        key, points = result
        self.robustness_line.setData([p.level * 100 for p in points], [p.f1 for p in points], **_style(key))
        self.status.setText("robustness: " + ", ".join(f"{p.level * 100:g}% -> F1 {p.f1:.3f}" for p in points))
        self.robustnessFinished.emit(list(points))

    def _on_robustness_failed(self, message: str) -> None:
        self._set_running(False)
        self.status.setText(message)
        self.robustnessFailed.emit(message)

    def _on_cancelled(self) -> None:
        self._set_running(False)
        self.status.setText("cancelled")

    def _on_cancel_clicked(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of label images", self.labels_edit.text())
        if folder:
            self.labels_edit.setText(folder)

    def _on_masks_changed(self, _z: int) -> None:
        keys = list(OBJECTS) + [k for k in self.session.masks if k not in OBJECTS]
        if keys != [self.object_box.itemData(i) for i in range(self.object_box.count())]:
            self.object_box.clear()
            for key in keys:
                self.object_box.addItem(OBJECTS[key].label if key in OBJECTS else key, key)
        if not self.session.masks.get(self.object_box.currentData()):
            predicted = [k for k in keys if self.session.masks.get(k)]
            if predicted:
                self.object_box.setCurrentIndex(self.object_box.findData(predicted[0]))

    def _on_volume_changed(self) -> None:
        if self.running:
            assert self.job is not None, "_start sets the job before it runs"
            self.job.cancel()
        self._metrics = None
        self.f1_curve.setData([], [])
        self.robustness_line.setData([], [])
        self.table.setRowCount(0)
        self.status.setText("")
        self._set_running(self.running)
