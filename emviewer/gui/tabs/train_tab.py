"""The Train tab: labelled folders and settings in, a user model out, with live curves.

Training runs in a :class:`~emviewer.gui.workers.Job`; each epoch's history row comes back
through the job's ``itemFinished`` signal and is drawn on the GUI thread (as do warnings
about slices without a partner, as text, before training starts). Stop leaves the
newest checkpoint in ``<model>.checkpoints/``; Resume continues from it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import InputError
from ...core.models.card import ModelCard
from ...core.objects import colour_of
from ...core.train import DataSpec, TrainConfig, checkpoint_dir, config_from_state, load_state, train
from ..session import Session
from ..workers import Job, start
from .adapt_panel import AdaptPanel
from .train_widgets import StatusLabel, TrainFields, TrainingCurvesView, format_duration

#: Settings a checkpoint keeps; Resume restores them so the run goes on as it started.
RESUMED_SETTINGS = (
    "arch",
    "context",
    "width",
    "depth",
    "tile",
    "batch_size",
    "steps_per_epoch",
    "learning_rate",
    "precision",
    "hard_mining",
)


class TrainTab(QWidget):
    """Train a model on labelled folders; the result lands in the user's model folder.

    ``start_training(**fields)`` and ``resume_training(**fields)`` fill the fields (the
    folder keys of ``train_widgets.FOLDERS``, ``foreground``, ``invert``, ``pair_by`` (``"number"`` or
    ``"order"``), ``name`` and the
    :class:`TrainConfig` names ``object``, ``arch``, ``context``, ``epochs``,
    ``steps_per_epoch``, ``width``, ``depth``, ``tile``, ``batch_size``, ``learning_rate``,
    ``hard_mining``, ``precision``), ``start_from`` (an installed model's name or file to
    fine-tune, or ``None`` for a new network) and press the button. ``settings`` keeps the
    last folders (the app's settings by default). ``adapt`` (above the fields) adapts a model to
    the corrected slices of ``session`` (or labelled folders).
    """

    modelTrained = Signal(str)  # the new .keras file
    trainingFailed = Signal(str)  # the message shown in the dialog
    trainingStopped = Signal(int)  # the epoch Resume continues from
    epochFinished = Signal(dict)  # a history row, after it is drawn
    dataWarned = Signal(str)  # e.g. slices without a partner, skipped; shown under the status

    def __init__(
        self, settings: QSettings | None = None, parent: QWidget | None = None, session: Session | None = None
    ) -> None:
        super().__init__(parent)
        self.settings = settings if settings is not None else QSettings("EMViewer", "EMViewer")  # last folders
        self.job: Job | None = None
        self.history: list[dict] = []
        self._out: Path | None = None
        self._stopped_out: Path | None = None
        self._first_step: tuple[float, int] | None = None
        self._error_box: QMessageBox | None = None
        self.fields = TrainFields(self.settings)
        fields = self.fields  # the tab's own names for its fields, as tests and scripts use them
        self.combos, self.spins, self.folders = fields.combos, fields.spins, fields.folders
        self.name, self.start_from, self.advanced = fields.name, fields.start_from, fields.advanced
        self.foreground, self.invert, self.pair_by = fields.foreground, fields.invert, fields.pair_by
        self.name.textChanged.connect(self._update_buttons)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # the forms wrap instead
        self.adapt = AdaptPanel(session)  # the quick path: a model adapted to the user's corrections
        forms = QWidget()
        forms_layout = QVBoxLayout(forms)
        forms_layout.setContentsMargins(0, 0, 0, 0)
        forms_layout.addWidget(self.adapt)
        forms_layout.addWidget(fields)
        scroll.setWidget(forms)
        self.adapt.modelAdapted.connect(self._refresh_start_models)
        self.adapt.modelDeleted.connect(self._refresh_start_models)
        running = QWidget()
        run_layout = QVBoxLayout(running)
        run_layout.setContentsMargins(0, 0, 0, 0)
        run_layout.addLayout(self._build_run_controls())
        self.curves = TrainingCurvesView()
        self.curves.setMinimumHeight(240)  # two readable plots; the splitter gives the settings the rest
        self.loss_curve, self.f1_curve = self.curves.loss_curve, self.curves.f1_curve
        run_layout.addWidget(self.curves, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)  # narrow: the tab sits in the side panel beside the images
        splitter.addWidget(scroll)
        splitter.addWidget(running)
        splitter.setStretchFactor(0, 3)  # the settings get most of the height; the curves grow when dragged
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([560, 440])  # proportions: the curves' own size hint would take two thirds
        splitter.setChildrenCollapsible(False)
        self.splitter = splitter
        QVBoxLayout(self).addWidget(splitter)
        self._update_buttons()

    # ------------------------------------------------------------------ building

    def _build_run_controls(self) -> QVBoxLayout:
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Train a new model with these settings")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop; the newest checkpoint stays and Resume continues from it")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue this model's run from its newest checkpoint")
        self.start_button.clicked.connect(lambda: self._launch(resume=False))
        self.resume_button.clicked.connect(lambda: self._launch(resume=True))
        self.stop_button.clicked.connect(self.stop)
        self.progress, self.status = QProgressBar(format="%v / %m steps"), StatusLabel()
        self.warnings = StatusLabel()  # this run's data warnings; progress does not overwrite them
        buttons = QHBoxLayout()
        for button in (self.start_button, self.stop_button, self.resume_button):
            buttons.addWidget(button)
        layout = QVBoxLayout()
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.warnings)
        return layout

    # ------------------------------------------------------------------ fields

    def set_fields(self, **fields) -> None:
        """Fill fields by name (see the class docstring); unknown names raise TypeError."""
        self.fields.set_fields(**fields)

    def data_spec(self) -> DataSpec:
        """The labelled data the fields name; raises InputError when a folder is missing."""
        return self.fields.data_spec()

    def train_config(self) -> TrainConfig:
        return self.fields.train_config()

    def output_path(self) -> Path:
        """``<user data>/models/<object>/<name>.keras``; raises InputError for a bad name."""
        return self.fields.output_path()

    # ------------------------------------------------------------------ running

    def start_training(self, **fields) -> Job | None:
        """Fill ``fields`` and start a new run; returns its job, or None when refused."""
        self.set_fields(**fields)
        return self._launch(resume=False)

    def resume_training(self, **fields) -> Job | None:
        """Fill ``fields`` and continue the named model's run from its newest checkpoint."""
        self.set_fields(**fields)
        return self._launch(resume=True)

    def is_running(self) -> bool:
        return self.job is not None

    def stop(self) -> None:
        """Ask the running job to stop at its next step; the newest checkpoint stays."""
        if self.job is not None:
            self.job.cancel()
            self.status.setText("stopping after this step...")

    def _launch(self, resume: bool) -> Job | None:
        if self.is_running():
            return None
        try:
            spec, out = self.data_spec(), self.output_path()
            if resume:
                state = self._resume_state(out)
            else:
                self._check_new(out)
                state = None
            train_config = self._resumed_config(state, out) if state else self.train_config()
        except InputError as exc:
            self._fail(str(exc))
            return None
        self.fields.remember_folders()
        colour = colour_of(train_config.object)
        self.f1_curve.setPen(pg.mkPen(colour, width=2))
        self.f1_curve.setSymbolBrush(colour)
        self.history = list(state["history"]) if state else []
        self._redraw()
        self._out, self._first_step = out, None
        self.warnings.setText("")
        start_model = None if state else self.start_from.currentData()

        def work(progress, cancel, emit_item):
            out.parent.mkdir(parents=True, exist_ok=True)
            return train(
                spec,
                train_config,
                out,
                resume=state is not None,
                progress=progress,
                cancel=cancel,
                on_epoch=emit_item,
                init_from=start_model,
                on_warning=emit_item,
            )

        self.job = Job(work)
        self.job.signals.progressed.connect(self._on_progressed)
        self.job.signals.itemFinished.connect(self._on_item)
        self.job.signals.finished.connect(self._on_finished)
        self.job.signals.failed.connect(self._on_failed)
        self.job.signals.cancelled.connect(self._on_cancelled)
        self._set_running(
            True, f"{'resuming' if state else 'starting'} {out.stem} (loading data and building the model)..."
        )
        start(self.job)
        return self.job

    def _check_new(self, out: Path) -> None:
        """A new run must not overwrite a finished model or an unfinished run's checkpoint."""
        if out.exists():
            raise InputError(
                out, "a model of this name exists; choose another name, or press Resume to train it longer"
            )
        state = load_state(out)
        if state is not None:
            raise InputError(
                checkpoint_dir(out),
                f"holds an unfinished run (epoch {state['epoch']}); "
                "press Resume to continue it, or choose another name",
            )

    def _resume_state(self, out: Path) -> dict | None:
        """The checkpoint state to continue from; None starts over (stopped before one was saved)."""
        state = load_state(out)
        if state is None:
            if out == self._stopped_out:
                return None
            raise InputError(checkpoint_dir(out), "nothing to resume: no checkpoint for this model name")
        epochs = self.spins["epochs"].value()
        if out.exists() and state["epoch"] >= epochs:
            raise InputError(
                out, f"already trained for {state['epoch']} epochs; set Epochs above {state['epoch']} to train longer"
            )
        return state

    def _resumed_config(self, state: dict, out: Path) -> TrainConfig:
        """The run's saved settings (shown in the fields again) with the Epochs field's count."""
        saved = state["config"]
        self.set_fields(**{key: saved[key] for key in RESUMED_SETTINGS if key in saved}, name=out.stem)
        return config_from_state(state, self.spins["epochs"].value())

    def _set_running(self, running: bool, message: str) -> None:
        if not running:
            self.job = None
        self.status.setText(message)
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.is_running()
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        try:
            out = self.output_path()
        except InputError:
            out = None
        resumable = out is not None and (out == self._stopped_out or load_state(out) is not None)
        self.resume_button.setEnabled(not running and resumable)

    # ------------------------------------------------------------------ job signals

    def _on_progressed(self, done: int, total: int, message: str, _job_estimate: float) -> None:
        """Steps done and the time left, measured from this run's first step (so resumes estimate right)."""
        now = time.monotonic()
        if self._first_step is None:
            self._first_step = (now, done)
        start_time, start_done = self._first_step
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        left = (
            f", about {format_duration((now - start_time) * (total - done) / (done - start_done))} left"
            if done > start_done
            else ""
        )
        self.status.setText(f"{message}{left}")

    def _on_item(self, item) -> None:
        """A history row (dict) or a data warning (str) from the job."""
        if isinstance(item, str):
            self.warnings.setText("\n".join(filter(None, (self.warnings.text(), f"warning: {item}"))))
            self.dataWarned.emit(item)
        else:
            self._on_epoch_finished(item)

    def _on_epoch_finished(self, row: dict) -> None:
        self.history.append(row)
        self._redraw()
        self.epochFinished.emit(row)

    def _redraw(self) -> None:
        epochs = [row["epoch"] for row in self.history]
        self.loss_curve.setData(epochs, [row["loss"] for row in self.history])
        self.f1_curve.setData(epochs, [row["val_f1"] for row in self.history])

    def _on_finished(self, card: ModelCard) -> None:
        out, self._stopped_out = self._out, None
        self._set_running(False, f"done: {out} (best epoch {card.best_epoch}, validation F1 {card.figure('f1'):.3f})")
        self.fields.refresh_default_name()
        self._refresh_start_models()  # the new model can be fine-tuned (or adapted) next
        self.adapt.refresh_models()
        self.modelTrained.emit(str(out))

    def _refresh_start_models(self) -> None:
        """The installed models anew in "Start from", the chosen one kept while it exists."""
        chosen = self.start_from.currentData()
        self.fields.refresh_start_models()
        if chosen is None or self.start_from.findData(chosen) >= 0:
            self.fields.choose_start_model(chosen)

    def _on_failed(self, message: str) -> None:
        self._set_running(False, "")
        self._fail(message)

    def _on_cancelled(self) -> None:
        assert self._out is not None, "_launch sets the output path before the job starts"
        self._stopped_out = self._out
        state = load_state(self._out)
        epoch = (state["epoch"] if state else 0) + 1
        self._set_running(False, f"stopped; Resume continues from epoch {epoch}")
        self.trainingStopped.emit(epoch)

    def _fail(self, message: str) -> None:
        """Say what went wrong in the status line and a dialog; fields and checkpoints stay."""
        self.status.setText(f"failed: {message}")
        self._update_buttons()
        self.trainingFailed.emit(message)
        box = QMessageBox(QMessageBox.Icon.Warning, "EMViewer - training", message, QMessageBox.StandardButton.Ok, self)
        box.open()
        self._error_box = box
