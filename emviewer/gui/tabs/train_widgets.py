"""Parts of the Train tab: its fields (:class:`TrainFields`: labelled data, model and advanced
settings, and what they mean as a :class:`DataSpec` and :class:`TrainConfig`), the field makers, the
duration format, the live curves; and the pairing choices the Evaluate tab shares."""

from __future__ import annotations

import re
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ... import config
from ...core.errors import InputError
from ...core.models import ARCHITECTURES
from ...core.models.registry import read_card
from ...core.objects import OBJECTS, colour_of
from ...core.train import DataSpec, TrainConfig, network_settings
from ...core.validate import parse_values

#: How image (or stack) slices meet label files, as the Train and Evaluate tabs offer it.
PAIR_CHOICES = (("number in the name", "number"), ("order", "order"))
FOLDERS = {"images": "Images", "labels": "Labels", "val_images": "Validation images", "val_labels": "Validation labels"}
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def combo_box(items, default) -> QComboBox:
    """A combo box of ``(text, data)`` items with ``default`` (a data value) chosen."""
    combo = QComboBox()
    for text, data in items:
        combo.addItem(text, data)
    combo.setCurrentIndex(combo.findData(default))
    return combo


def spin_box(low, high, value, step=1, decimals=0):
    spin: QDoubleSpinBox | QSpinBox
    if decimals:
        spin = QDoubleSpinBox()
        spin.setDecimals(decimals)
    else:
        spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    return spin


class TrainingCurvesView(QWidget):
    """Training loss and validation F1 per epoch, one pyqtgraph plot each."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        curves = []
        for title, label, colour in (
            ("Training loss per epoch", "loss", (60, 60, 60)),
            ("Validation F1 per epoch", "F1", colour_of("mito")),
        ):
            # compact (small title, the axis named in it) to fit the side panel's height
            plot = pg.PlotWidget(background="w", title=title, size="9pt")
            plot.setLabel("left", label)
            plot.showGrid(x=True, y=True, alpha=0.3)
            curves.append(
                plot.plot([], [], pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=6, symbolBrush=colour)
            )
            layout.addWidget(plot)
        self.loss_curve, self.f1_curve = curves
        self.f1_curve.getViewBox().setYRange(0, 1.05)


class StatusLabel(QLabel):
    """A word-wrapped label that takes no room while it has no text."""

    def __init__(self) -> None:
        super().__init__("", wordWrap=True)
        self.hide()

    def setText(self, text: str) -> None:  # noqa: N802 (Qt override)
        super().setText(text)
        self.setVisible(bool(text))


def wrapping_form(box: QWidget) -> QFormLayout:
    """A form whose fields go under their labels when the side panel is too narrow for both."""
    form = QFormLayout(box)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    return form


class TrainFields(QWidget):
    """The Train tab's settings in three group boxes: labelled data, model, and advanced (greyed
    out until ticked). ``settings`` keeps the last folders trained on."""

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self._name_edited = False
        self._make_fields()
        layout = QVBoxLayout(self)
        layout.addWidget(self._build_data_box())
        layout.addWidget(
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
        layout.addWidget(self.advanced)
        layout.addStretch(1)
        self.refresh_default_name()

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
        # long model names must not widen the panel; the list shows them in full
        self.start_from.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.start_from.setMinimumContentsLength(14)
        self.start_from.setToolTip(
            "Fine-tune an installed model on your data (its network is kept), or train a new one"
        )
        self.combos["object"].currentIndexChanged.connect(self.refresh_start_models)
        self.start_from.currentIndexChanged.connect(self._on_start_model_changed)
        self.refresh_start_models()
        for key in ("object", "arch", "context"):
            self.combos[key].currentIndexChanged.connect(self.refresh_default_name)
        self.name.textEdited.connect(self._on_name_edited)

    def _form_box(self, title: str, rows) -> QGroupBox:
        box = QGroupBox(title)
        form = wrapping_form(box)
        widgets = {**self.combos, **self.spins, "name": self.name, "start_from": self.start_from}
        for label, key in rows:
            form.addRow(label, widgets[key])
        return box

    def _build_data_box(self) -> QGroupBox:
        box = QGroupBox("Labelled data")
        form = wrapping_form(box)
        self.folders: dict[str, QLineEdit] = {}
        for key, title in FOLDERS.items():
            optional = key.startswith("val")
            edit = QLineEdit(self._last_folder(key), placeholderText="optional" if optional else "folder or stack")
            edit.setToolTip(
                f"{title}: a folder of slices or a stack"
                + ("; empty: the last 15 % of the training slices validate" if optional else "")
            )
            browse = QPushButton("Browse...")
            browse.clicked.connect(lambda checked=False, k=key: self._on_browse(k))
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            row.addWidget(browse)
            form.addRow(title, row)
            self.folders[key] = edit
        self.foreground = QLineEdit(placeholderText="e.g. 2 or 1,2")
        self.foreground.setToolTip("The label value(s) of the object; empty: the larger of two values")
        self.invert = QCheckBox("invert (object = background)")
        self.invert.setToolTip("The object is the background value (the labels mark everything else)")
        self.pair_by = combo_box(PAIR_CHOICES, "number")
        self.pair_by.setToolTip(
            "How label files meet image files: by the number in their names, or by position (same count, same order)"
        )
        form.addRow("Foreground", self.foreground)
        form.addRow("", self.invert)
        form.addRow("Pair by", self.pair_by)
        return box

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
                self.choose_start_model(value)
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

    def refresh_start_models(self) -> None:
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

    def choose_start_model(self, value) -> None:
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
            self.refresh_default_name()

    def refresh_default_name(self) -> None:
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

    def _last_folder(self, key: str) -> str:
        """The folder last trained on for this ``FOLDERS`` key, or ``""``."""
        return str(self.settings.value(f"train/{key}", "") or "")

    def _on_browse(self, key: str) -> None:
        current = self.folders[key].text() or self._last_folder(key)
        path = QFileDialog.getExistingDirectory(self, f"{FOLDERS[key]} folder", current)
        if path:
            self.folders[key].setText(path)

    def remember_folders(self) -> None:
        for key, edit in self.folders.items():
            self.settings.setValue(f"train/{key}", edit.text().strip())
