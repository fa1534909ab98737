"""Adapt a model to the user's own data: a few corrected (or labelled) slices fine-tune it.

The slices are the open session's hand-corrected slices of one object, or a folder of images
with a folder of labels. :func:`~emviewer.core.adapt.adapt` runs in a
:class:`~emviewer.gui.workers.Job` within the chosen time; the held-back slices' scores before
and after say whether the new model is better. Only a better model is written (into the user's
model folder); the source model is read, never written.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ... import config
from ...core.adapt import AdaptResult, adapt, default_output
from ...core.errors import InputError
from ...core.fine_tune import FineTuneSettings
from ...core.models.registry import models_for, read_card
from ...core.objects import OBJECTS
from ...core.progress import carries_estimate
from ..predict_panel import picker_text
from ..session import Session
from ..workers import Job, start
from .adapt_slices import SliceSource
from .train_widgets import StatusLabel, combo_box, format_duration, wrapping_form

#: Default time limit of an adaptation, minutes.
DEFAULT_MINUTES = 10.0


def result_line(result: AdaptResult) -> str:
    """``Held-back train_080: F1 0.806 -> 0.867, IoU 0.675 -> 0.765 (9.8 min)``: three decimals,
    so a small gain that made the model "better" is visible."""
    took = f"{result.seconds:.0f} s" if result.seconds < 60 else f"{result.seconds / 60:.1f} min"
    before, after = result.before, result.after
    zoom = f"; {result.zoom_line()}" if result.zoom_line() else ""
    return (
        f"Held-back {', '.join(result.held_out)}: F1 {before.f1:.3f} -> {after.f1:.3f}, "
        f"IoU {before.iou:.3f} -> {after.iou:.3f} ({took}{zoom})"
    )


class AdaptPanel(QGroupBox):
    """ "Adapt model to my corrections": source slices, object, source model, time, new name.

    ``session`` (or :meth:`set_session`) gives the corrected slices; :meth:`set_source` picks
    the object and model (e.g. the Segment panel's). ``fine_tune_settings`` (``None``: the
    core's defaults) is how training runs.
    """

    modelAdapted = Signal(str)  # the new .keras file, once written
    useModelRequested = Signal(str, str)  # object key, the new .keras file
    modelDeleted = Signal(str)  # the .keras file removed by "Delete this model"
    adaptFinished = Signal(object)  # the AdaptResult, better or not
    adaptFailed = Signal(str)  # the message shown in the dialog
    adaptCancelled = Signal()

    def __init__(self, session: Session | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Adapt model to my corrections", parent)
        self.session: Session | None = None
        self.job: Job | None = None
        self.fine_tune_settings: FineTuneSettings | None = None
        self.result: AdaptResult | None = None
        self._object_of_result = self._source_name = ""
        self._name_edited = False
        self._dialog: QMessageBox | None = None
        layout = QVBoxLayout(self)
        self.slices = SliceSource()
        self.slices.changed.connect(self._update_buttons)
        layout.addWidget(self.slices)
        layout.addWidget(self._build_form())
        layout.addLayout(self._build_run_controls())
        self.refresh_models()
        self.set_session(session)

    # ------------------------------------------------------------------ building

    def _build_form(self) -> QWidget:
        self.object = combo_box([(kind.label, key) for key, kind in OBJECTS.items()], "mito")
        self.source_model = QComboBox()
        self.source_model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.source_model.setMinimumContentsLength(14)
        self.source_model.setToolTip("The model to adapt; it is read, never changed")
        self.minutes = QDoubleSpinBox(suffix=" min")
        self.minutes.setDecimals(1)
        self.minutes.setRange(0.1, 600.0)
        self.minutes.setValue(DEFAULT_MINUTES)
        self.minutes.setToolTip("How long the adaptation trains (the source model is scored before and after)")
        self.name = QLineEdit()
        self.name.setToolTip("File name of the adapted model in your model folder (never overwrites one)")
        self.object.currentIndexChanged.connect(self.refresh_models)
        self.source_model.currentIndexChanged.connect(self._refresh_default_name)
        self.name.textEdited.connect(self._on_name_edited)
        holder = QWidget()
        form = wrapping_form(holder)
        form.setContentsMargins(0, 0, 0, 0)
        for label, widget in (
            ("Object", self.object),
            ("Source model", self.source_model),
            ("Time limit", self.minutes),
            ("New model name", self.name),
        ):
            form.addRow(label, widget)
        return holder

    def _build_run_controls(self) -> QVBoxLayout:
        self.adapt_button = QPushButton("Adapt")
        self.cancel_button = QPushButton("Cancel")
        self.use_button = QPushButton("Use this model")
        self.use_button.setToolTip("Segment with the adapted model")
        self.delete_button = QPushButton("Delete this model")
        self.delete_button.setToolTip("Remove the adapted model and its card from your model folder")
        self.adapt_button.clicked.connect(self.start_adapting)
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button.clicked.connect(self._on_use)
        self.delete_button.clicked.connect(self.ask_delete)
        self.progress = QProgressBar(format="%v / %m s")
        self.status, self.result_label = StatusLabel(), StatusLabel()
        layout = QVBoxLayout()
        for pair in ((self.adapt_button, self.cancel_button), (self.use_button, self.delete_button)):
            row = QHBoxLayout()
            for button in pair:
                row.addWidget(button)
            layout.addLayout(row)
        for widget in (self.progress, self.status, self.result_label):
            layout.addWidget(widget)
        self._show_result_buttons(False)
        return layout

    # ------------------------------------------------------------------ choices

    def set_session(self, session: Session | None) -> None:
        """Take the corrected slices from ``session`` (None: none open)."""
        if self.session is not None:
            self.session.masksChanged.disconnect(self._update_buttons)
            self.session.volumeChanged.disconnect(self._update_buttons)
        self.session = self.slices.session = session
        if session is not None:
            session.masksChanged.connect(self._update_buttons)
            session.volumeChanged.connect(self._update_buttons)
        self._update_buttons()

    def set_source(self, key: str, model_path: str | Path | None = None) -> None:
        """Adapt object ``key``'s ``model_path`` (None: the object's default model)."""
        self.object.setCurrentIndex(self.object.findData(key))
        self.refresh_models()
        if model_path is not None:
            index = self.source_model.findData(str(model_path))
            if index < 0:
                raise ValueError(f"{model_path} is not an installed model of {key}")
            self.source_model.setCurrentIndex(index)

    def refresh_models(self) -> None:
        """The chosen object's installed models, its default (fast) model chosen first."""
        key, current = self.object.currentData(), self.source_model.currentData()
        entries = [e for e in config.installed_models() if e.card.object == key]
        self.source_model.blockSignals(True)
        self.source_model.clear()
        for entry in entries:
            self.source_model.addItem(picker_text(entry), str(entry.path))  # says what it was trained on
        default = str(models_for(key, "fast", entries)[0]) if entries else None
        index = self.source_model.findData(current)
        self.source_model.setCurrentIndex(index if index >= 0 else max(0, self.source_model.findData(default)))
        self.source_model.blockSignals(False)
        self._refresh_default_name()

    def _on_name_edited(self, text: str) -> None:
        self._name_edited = bool(text.strip())
        if not self._name_edited:
            self._refresh_default_name()

    def _refresh_default_name(self) -> None:
        source = self.source_model.currentData()
        if not self._name_edited and source:
            self.name.setText(default_output(Path(source), self._folder()).stem)
        self._update_buttons()

    def _folder(self) -> Path:
        return config.user_models_dir() / self.object.currentData()

    def output_path(self) -> Path:
        """The new model's file; raises InputError for a bad or taken name."""
        name, source = self.name.text().strip(), self.source_model.currentData()
        if not source:
            raise InputError(None, f"no {self.object.currentText()} model is installed to adapt")
        if not re.fullmatch(r"\w[\w.-]*", name):
            raise InputError(None, f"model name {name!r}: use letters, digits, '-', '_' and '.' only")
        return default_output(Path(source), self._folder(), name)

    def _why_not(self) -> str:
        """Why Adapt cannot start now ("" when it can)."""
        if self.job is not None:
            return "an adaptation is running"
        if not self.source_model.currentData():
            return f"no {self.object.currentText()} model is installed to adapt"
        return self.slices.why_not(self.object.currentData(), self.object.currentText())

    def _update_buttons(self) -> None:
        self.slices.show_count(self.object.currentData())
        why = self._why_not()
        self.adapt_button.setEnabled(not why)
        self.adapt_button.setToolTip(why or "Fine-tune the source model on these slices within the time limit")
        self.cancel_button.setEnabled(self.job is not None and not self.job.token.cancelled)

    # ------------------------------------------------------------------ running

    def is_running(self) -> bool:
        return self.job is not None

    def start_adapting(self) -> Job | None:
        """Start an adaptation with the panel's choices; returns its job, or None when refused."""
        if self._why_not():
            return None
        try:
            out, source = self.output_path(), Path(self.source_model.currentData())
            reference = read_card(source).reference
            load = self.slices.loader(self.object.currentData(), reference)
        except InputError as exc:
            self._fail(str(exc))
            return None
        seconds, settings = self.minutes.value() * 60, self.fine_tune_settings

        def work(progress, cancel, _emit_item):
            stack = load()
            out.parent.mkdir(parents=True, exist_ok=True)
            return adapt(stack, source, out, seconds, settings, progress, cancel)

        self.job, self.result = Job(work), None
        self._object_of_result, self._source_name = self.object.currentData(), source.stem
        self.job.signals.progressed.connect(self._on_progressed)
        self.job.signals.finished.connect(self._on_finished)
        self.job.signals.failed.connect(self._on_failed)
        self.job.signals.cancelled.connect(self._on_cancelled)
        self.progress.setRange(0, max(1, int(seconds)))
        self.progress.setValue(0)
        self.result_label.setText("")
        self._show_result_buttons(False)
        self.cancel_button.setText("Cancel")
        self._set_running(True, f"adapting {source.stem} into {out.stem} (loading the slices and the model)...")
        start(self.job)
        return self.job

    def cancel(self) -> None:
        """Ask the running adaptation to stop; nothing is written once it has."""
        if self.job is not None:
            self.job.cancel()
            self.cancel_button.setText("Cancelling...")
            self.cancel_button.setEnabled(False)
            self.status.setText("cancelling...")

    def _set_running(self, running: bool, message: str) -> None:
        if not running:
            self.job = None
            self.cancel_button.setText("Cancel")
        self.status.setText(message)
        self._update_buttons()

    def _on_progressed(self, done: int, total: int, message: str, _job_estimate: float) -> None:
        """``done`` and ``total`` are seconds of the time limit."""
        if self.job is None or self.job.token.cancelled:
            return
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(min(done, total))
        left = "" if carries_estimate(message) else f", at most {format_duration(max(0, total - done))} left"
        self.status.setText(f"{message}{left}")

    def _on_finished(self, result: AdaptResult) -> None:
        self.result = result
        self.progress.setValue(self.progress.maximum())
        if result.better and result.model_path is not None:
            self._set_running(False, f"wrote {result.model_path.name}")
            self.result_label.setText(result_line(result))
            self._show_result_buttons(True)
            self._name_edited = False
            self.refresh_models()  # the new model can be adapted further
            self.modelAdapted.emit(str(result.model_path))
        else:
            self._set_running(False, "")
            self.result_label.setText(
                f"{result_line(result)}\nNot better than {self._source_name}: nothing was written. "
                "Correct more slices or give more time."
            )
        self.adaptFinished.emit(result)

    def _on_failed(self, message: str) -> None:
        self._set_running(False, "")
        self._fail(message)

    def _on_cancelled(self) -> None:
        self.progress.setValue(0)
        self._set_running(False, "cancelled; nothing was written")
        self.adaptCancelled.emit()

    def _fail(self, message: str) -> None:
        self.status.setText(f"failed: {message}")
        self.adaptFailed.emit(message)
        self._dialog = QMessageBox(QMessageBox.Icon.Warning, "EMViewer - adaptation", message, parent=self)
        self._dialog.open()

    # ------------------------------------------------------------------ the new model

    def _show_result_buttons(self, shown: bool) -> None:
        self.use_button.setVisible(shown)
        self.delete_button.setVisible(shown)

    def _on_use(self) -> None:
        if self.result is not None and self.result.model_path is not None:
            self.useModelRequested.emit(self._object_of_result, str(self.result.model_path))

    def ask_delete(self) -> QMessageBox | None:
        """Ask before deleting the adapted model; returns the (non-blocking) question."""
        path = self.result.model_path if self.result is not None else None
        if path is None:
            return None
        self._dialog = QMessageBox(
            QMessageBox.Icon.Question,
            "EMViewer - delete model",
            f"Delete {path.name} and its card from your model folder?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        self._dialog.buttonClicked.connect(self._on_delete_answered)
        self._dialog.open()
        return self._dialog

    def _on_delete_answered(self, button) -> None:
        if self._dialog is not None and self._dialog.standardButton(button) == QMessageBox.StandardButton.Yes:
            self.delete_model()

    def delete_model(self) -> None:
        """Remove the adapted model (.keras and .json); only files in the user's model folder."""
        path = self.result.model_path if self.result is not None else None
        if path is None or not path.resolve().is_relative_to(config.user_models_dir().resolve()):
            return
        for file in (path, path.with_suffix(".json")):
            file.unlink(missing_ok=True)
        self.result = None
        self._show_result_buttons(False)
        self.status.setText(f"deleted {path.name}")
        self.refresh_models()
        self.modelDeleted.emit(str(path))
