"""The Train tab: labelled folders and settings in, a user model out, with live curves.

Training runs in a :class:`~emviewer.gui.workers.Job`; each epoch's history row comes back
through the job's ``itemFinished`` signal and is drawn on the GUI thread (as do warnings
about slices without a partner, as text, before training starts). Stop leaves the
newest checkpoint in ``<model>.checkpoints/``; Resume continues from it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ... import config
from ...core.errors import InputError
from ...core.models import ARCHITECTURES
from ...core.models.card import ModelCard
from ...core.models.registry import read_card
from ...core.objects import OBJECTS, colour_of
from ...core.train import DataSpec, TrainConfig, checkpoint_dir, config_from_state, load_state, network_settings, train
from ...core.validate import parse_values
from ..workers import Job, start
from .train_widgets import PAIR_CHOICES, TrainingCurvesView, combo_box, format_duration, spin_box

FOLDERS = {"images": "Images", "labels": "Labels", "val_images": "Validation images", "val_labels": "Validation labels"}
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
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
    folder keys of ``FOLDERS``, ``foreground``, ``invert``, ``pair_by`` (``"number"`` or
    ``"order"``), ``name`` and the
    :class:`TrainConfig` names ``object``, ``arch``, ``context``, ``epochs``,
    ``steps_per_epoch``, ``width``, ``depth``, ``tile``, ``batch_size``, ``learning_rate``,
    ``hard_mining``, ``precision``), ``start_from`` (an installed model's name or file to
    fine-tune, or ``None`` for a new network) and press the button. ``settings`` keeps the
    last folders (the app's settings by default).
    """

    modelTrained = Signal(str)  # the new .keras file
    trainingFailed = Signal(str)  # the message shown in the dialog
    trainingStopped = Signal(int)  # the epoch Resume continues from
    epochFinished = Signal(dict)  # a history row, after it is drawn
    dataWarned = Signal(str)  # e.g. slices without a partner, skipped; shown under the status

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings if settings is not None else QSettings("EMViewer", "EMViewer")  # last folders
        self.job: Job | None = None
        self.history: list[dict] = []
        self._out: Path | None = None
        self._stopped_out: Path | None = None
        self._name_edited = False
        self._first_step: tuple[float, int] | None = None
        self._error_box: QMessageBox | None = None
        self._make_fields()
        fields = QWidget()
        form = QVBoxLayout(fields)
        form.addWidget(self._build_data_box())
        form.addWidget(
            self._form_box(
                "Model",
                (
                    ("Object", "object"),
                    ("Start from", "start_from"),
                    ("Architecture", "arch"),
                    ("Context", "context"),
                    ("Epochs", "epochs"),
                    ("Steps per epoch", "steps_per_epoch"),
                    ("Width", "width"),
                    ("Model name", "name"),
                ),
            )
        )
        self.advanced = self._form_box(
            "Advanced",
            (
                ("Tile (px)", "tile"),
                ("Batch size", "batch_size"),
                ("Depth", "depth"),
                ("Learning rate", "learning_rate"),
                ("Hard-example share", "hard_mining"),
                ("Precision", "precision"),
            ),
        )
        self.advanced.setCheckable(True)
        self.advanced.setChecked(False)  # greyed out until ticked: the defaults suit most data
        form.addWidget(self.advanced)
        form.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(fields)
        running = QWidget()
        run_layout = QVBoxLayout(running)
        run_layout.addLayout(self._build_run_controls())
        self.curves = TrainingCurvesView()
        self.loss_curve, self.f1_curve = self.curves.loss_curve, self.curves.f1_curve
        run_layout.addWidget(self.curves, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)  # narrow: the tab sits in the side panel beside the images
        splitter.addWidget(scroll)
        splitter.addWidget(running)
        QVBoxLayout(self).addWidget(splitter)
        self._refresh_default_name()

    # ------------------------------------------------------------------ building

    def _make_fields(self) -> None:
        defaults = TrainConfig()
        self.combos = {
            "object": combo_box([(kind.label, key) for key, kind in OBJECTS.items()], defaults.object),
            "arch": combo_box([(arch, arch) for arch in ARCHITECTURES], defaults.arch),
            "context": combo_box([(f"{n} slice{'s' if n > 1 else ''}", n) for n in (1, 3, 5)], defaults.context),
            "precision": combo_box([(p, p) for p in PRECISIONS], defaults.precision),
        }
        self.spins = {
            "epochs": spin_box(1, 100000, defaults.epochs),
            "steps_per_epoch": spin_box(1, 1000000, defaults.steps_per_epoch),
            "width": spin_box(2, 256, defaults.width),
            "tile": spin_box(32, 2048, defaults.tile, step=32),
            "batch_size": spin_box(1, 512, defaults.batch_size),
            "depth": spin_box(1, 8, defaults.depth),
            "learning_rate": spin_box(1e-5, 1.0, defaults.learning_rate, step=1e-4, decimals=5),
            "hard_mining": spin_box(0.0, 1.0, defaults.hard_mining, step=0.1, decimals=2),
        }
        self.spins["hard_mining"].setToolTip(
            "Share of training crops centred where the model still errs "
            "(found before each epoch by predicting the training slices); 0 = all crops random"
        )
        self.name = QLineEdit()
        self.name.setToolTip("File name of the model in your model folder")
        self.start_from = QComboBox()
        self.start_from.setToolTip(
            "Fine-tune an installed model on your data (its network is kept), or train a new one"
        )
        self.combos["object"].currentIndexChanged.connect(self._refresh_start_models)
        self.start_from.currentIndexChanged.connect(self._on_start_model_changed)
        self._refresh_start_models()
        for key in ("object", "arch", "context"):
            self.combos[key].currentIndexChanged.connect(self._refresh_default_name)
        self.name.textEdited.connect(self._on_name_edited)
        self.name.textChanged.connect(self._update_buttons)

    def _form_box(self, title: str, rows) -> QGroupBox:
        box = QGroupBox(title)
        form = QFormLayout(box)
        widgets = {**self.combos, **self.spins, "name": self.name, "start_from": self.start_from}
        for label, key in rows:
            form.addRow(label, widgets[key])
        return box

    def _build_data_box(self) -> QGroupBox:
        box = QGroupBox("Labelled data")
        form = QFormLayout(box)
        self.folders: dict[str, QLineEdit] = {}
        for key, title in FOLDERS.items():
            edit = QLineEdit(
                self._last_folder(key),
                placeholderText="optional: else the last 15 % of the slices"
                if key.startswith("val")
                else "folder or stack",
            )
            browse = QPushButton("Browse...")
            browse.clicked.connect(lambda checked=False, k=key: self._on_browse(k))
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            row.addWidget(browse)
            form.addRow(title, row)
            self.folders[key] = edit
        self.foreground = QLineEdit(placeholderText="e.g. 2 or 1,2 (empty: the larger of two values)")
        self.invert = QCheckBox("invert (object is the background value)")
        self.pair_by = combo_box(PAIR_CHOICES, "number")
        self.pair_by.setToolTip(
            "How label files meet image files: by the number in their names, or by position (same count, same order)"
        )
        form.addRow("Foreground", self.foreground)
        form.addRow("", self.invert)
        form.addRow("Pair by", self.pair_by)
        return box

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
        self.progress, self.status = QProgressBar(format="%v / %m steps"), QLabel("", wordWrap=True)
        self.warnings = QLabel("", wordWrap=True)  # this run's data warnings; progress does not overwrite them
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
        for key, value in fields.items():
            if key in self.folders:
                self.folders[key].setText(str(value or ""))
            elif key in self.combos:
                index = self.combos[key].findData(value)
                if index < 0:
                    raise ValueError(f"{key}: {value!r} is not one of the choices")
                self.combos[key].setCurrentIndex(index)
            elif key in self.spins:
                self.spins[key].setValue(value)
            elif key == "foreground":
                self.foreground.setText(value if isinstance(value, str) else ",".join(f"{v:g}" for v in value or []))
            elif key == "invert":
                self.invert.setChecked(bool(value))
            elif key == "pair_by":
                if self.pair_by.findData(value) < 0:
                    raise ValueError(f"pair_by: {value!r} is not one of number, order")
                self.pair_by.setCurrentIndex(self.pair_by.findData(value))
            elif key == "name":
                self.name.setText(value)
                self._on_name_edited(value)
            elif key == "start_from":
                self._choose_start_model(value)
            else:
                raise TypeError(f"unknown training field {key!r}")

    def data_spec(self) -> DataSpec:
        """The labelled data the fields name; raises InputError when a folder is missing."""
        paths = {key: edit.text().strip() for key, edit in self.folders.items()}
        for key in ("images", "labels"):
            if not paths[key]:
                raise InputError(None, f"choose the {FOLDERS[key].lower()} folder (or stack) to train on")
        if bool(paths["val_images"]) != bool(paths["val_labels"]):
            raise InputError(None, "give both validation images and validation labels, or neither")
        lists = {key: [path] if path else [] for key, path in paths.items()}
        return DataSpec(
            lists["images"],
            lists["labels"],
            lists["val_images"],
            lists["val_labels"],
            parse_values(self.foreground.text(), "foreground"),
            self.invert.isChecked(),
            self.pair_by.currentData(),
        )

    def train_config(self) -> TrainConfig:
        values = {key: combo.currentData() for key, combo in self.combos.items()}
        values.update({key: spin.value() for key, spin in self.spins.items()})
        return TrainConfig(**values)

    def _refresh_start_models(self) -> None:
        """ "new network" and the installed models of the chosen object."""
        object_key = self.combos["object"].currentData()
        self.start_from.blockSignals(True)
        self.start_from.clear()
        self.start_from.addItem("new network (random weights)", None)
        for entry in config.installed_models():
            if entry.card.object == object_key:
                self.start_from.addItem(entry.name, str(entry.path))
        self.start_from.blockSignals(False)
        self._on_start_model_changed()

    def _choose_start_model(self, value) -> None:
        if value is None:
            self.start_from.setCurrentIndex(0)
            return
        index = self.start_from.findData(str(value))
        index = index if index >= 0 else self.start_from.findText(str(value))
        if index < 0:
            raise ValueError(f"start_from: {value!r} is not an installed model of this object")
        self.start_from.setCurrentIndex(index)

    def _on_start_model_changed(self) -> None:
        """A fine-tuned model keeps its network: show its settings and lock them (all but
        the context, to which its weights can be adapted)."""
        path = self.start_from.currentData()
        for key, value in (network_settings(read_card(Path(path))) if path else {}).items():
            if key in self.combos:
                self.combos[key].setCurrentIndex(self.combos[key].findData(value))
            else:
                self.spins[key].setValue(value)
        for widget in (self.combos["arch"], self.spins["width"]):
            widget.setEnabled(not path)  # depth sits in the Advanced box, which has its own switch

    def output_path(self) -> Path:
        """``<user data>/models/<object>/<name>.keras``; raises InputError for a bad name."""
        name = self.name.text().strip()
        if not re.fullmatch(r"\w[\w.-]*", name):
            raise InputError(None, f"model name {name!r}: use letters, digits, '-', '_' and '.' only")
        return config.user_models_dir() / self.combos["object"].currentData() / f"{name}.keras"

    def _on_name_edited(self, text: str) -> None:
        self._name_edited = bool(text.strip())
        if not self._name_edited:
            self._refresh_default_name()

    def _refresh_default_name(self) -> None:
        """``<object>-<arch>-<context>fm``, numbered past finished models of that name."""
        if self._name_edited:
            return
        base = "-".join(
            (
                self.combos["object"].currentData(),
                self.combos["arch"].currentData(),
                f"{self.combos['context'].currentData()}fm",
            )
        )
        folder = config.user_models_dir() / self.combos["object"].currentData()
        name, number = base, 1
        while (folder / f"{name}.keras").exists():
            number += 1
            name = f"{base}-{number}"
        self.name.setText(name)
        self._update_buttons()

    def _last_folder(self, key: str) -> str:
        """The folder last trained on for this ``FOLDERS`` key, or ``""``."""
        return str(self.settings.value(f"train/{key}", "") or "")

    def _on_browse(self, key: str) -> None:
        current = self.folders[key].text() or self._last_folder(key)
        path = QFileDialog.getExistingDirectory(self, f"{FOLDERS[key]} folder", current)
        if path:
            self.folders[key].setText(path)

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
        self._remember_folders()
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

    def _remember_folders(self) -> None:
        for key, edit in self.folders.items():
            self.settings.setValue(f"train/{key}", edit.text().strip())

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
        self._refresh_default_name()
        chosen = self.start_from.currentData()
        self._refresh_start_models()  # the new model can be fine-tuned next
        self._choose_start_model(chosen)
        self.modelTrained.emit(str(out))

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
