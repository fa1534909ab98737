"""Where an adaptation's labelled slices come from: the session's corrected slices or two folders."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ...core.adapt import labelled_from_arrays
from ...core.dataset import LabelledStack, load_labelled
from ..session import Session
from .train_widgets import wrapping_form

#: The fewest labelled slices an adaptation takes (one to train on, one to score).
MIN_SLICES = 2


def corrected_slices(session: Session | None, key: str) -> list[int]:
    """The open stack's hand-corrected slices of object ``key`` (0-based, ascending)."""
    if session is None or session.volume is None:
        return []
    return sorted(z for z in session.edited.get(key, set()) if z in session.masks.get(key, {}))


class SliceSource(QWidget):
    """Two choices: "slices I corrected" (the session's hand-edited slices of an object, listed
    1-based as the slice slider counts) or "labelled images" (an images and a labels folder).
    ``changed`` says the choice or a folder changed."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session: Session | None = None
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        self.from_corrections = QRadioButton("slices I corrected")
        self.from_corrections.setChecked(True)
        self.from_folders = QRadioButton("labelled images")
        group = QButtonGroup(self)
        group.addButton(self.from_corrections)
        group.addButton(self.from_folders)
        self.corrections = QLabel("no stack open", wordWrap=True)
        self.folders: dict[str, QLineEdit] = {}
        self.folder_rows = QWidget()
        form = wrapping_form(self.folder_rows)
        for key, title in (("images", "Images"), ("labels", "Labels")):
            edit = QLineEdit(placeholderText="folder or stack")
            edit.setToolTip(f"{title}: a folder of slices or a stack")
            browse = QPushButton("Browse...")
            browse.clicked.connect(lambda checked=False, k=key: self._on_browse(k))
            edit.textChanged.connect(self.changed)
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            row.addWidget(browse)
            form.addRow(title, row)
            self.folders[key] = edit
        for widget in (self.from_corrections, self.corrections, self.from_folders, self.folder_rows):
            column.addWidget(widget)
        self.from_folders.toggled.connect(self._on_kind_changed)
        self._on_kind_changed()

    def use_folders(self, use: bool) -> None:
        """Choose "labelled images" (True) or "slices I corrected" (False)."""
        (self.from_folders if use else self.from_corrections).setChecked(True)

    def _on_kind_changed(self) -> None:
        self.folder_rows.setVisible(self.from_folders.isChecked())
        self.corrections.setEnabled(self.from_corrections.isChecked())
        self.changed.emit()

    def _on_browse(self, key: str) -> None:
        path = QFileDialog.getExistingDirectory(self, f"{key.capitalize()} folder", self.folders[key].text())
        if path:
            self.folders[key].setText(path)

    def show_count(self, key: str) -> None:
        """Say how many slices of object ``key`` are corrected: "3 corrected slices: 5, 12, 40"."""
        if self.session is None or self.session.volume is None:
            self.corrections.setText("no stack open")
            return
        zs = corrected_slices(self.session, key)
        listed = f": {', '.join(str(z + 1) for z in zs)}" if zs else ""
        self.corrections.setText(f"{len(zs)} corrected slice{'' if len(zs) == 1 else 's'}{listed}")

    def why_not(self, key: str, label: str) -> str:
        """Why the slices cannot be adapted to ("" when they can); ``label`` names the object."""
        if self.from_folders.isChecked():
            missing = [name for name, edit in self.folders.items() if not edit.text().strip()]
            return f"choose the {' and '.join(missing)} folder" if missing else ""
        count = len(corrected_slices(self.session, key))
        if count < MIN_SLICES:
            return (
                f"correct at least {MIN_SLICES} slices of {label} "
                f"(one to train on, one to score before and after); {count} corrected so far"
            )
        return ""

    def loader(self, key: str, reference: tuple[float, float]) -> Callable[[], LabelledStack]:
        """A function for the job that returns the labelled slices (model input at ``reference``).

        Corrected slices (named "slice N", 1-based) are copied now, on the GUI thread, so edits
        made while the job runs do not reach it; folders are read in the job."""
        if self.from_folders.isChecked():
            image_folder, label_folder = (self.folders[name].text().strip() for name in ("images", "labels"))
            return lambda: load_labelled(image_folder, label_folder, reference=reference)
        session = self.session
        if session is None or session.volume is None:
            raise RuntimeError("no stack is open")
        volume, zs = session.volume, corrected_slices(session, key)
        images = np.stack([np.asarray(volume.slice(z)) for z in zs])
        masks = np.stack([session.masks[key][z] for z in zs])
        names, source, pixel_size = [f"slice {z + 1}" for z in zs], str(volume.source), volume.pixel_size
        return lambda: labelled_from_arrays(images, masks, names, source, reference, pixel_size)
