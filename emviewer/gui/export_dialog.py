"""The export dialog: the session's stack, masks and probabilities to HDF5, PNG, JPEG, TIFF, RAW or PDF.

The dialog only gathers the choices. :func:`emviewer.core.export.export` writes the files in a
background :class:`~emviewer.gui.workers.Job`; its writers are atomic, so a failed or
cancelled export leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QBoxLayout,
    QButtonGroup,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import InputError
from ..core.export import FORMATS as EXTENSION_FORMATS  # extension -> core format key
from ..core.export import export, format_of, mask_volumes, parse_slices, probability_volumes
from ..core.objects import OBJECTS
from ..core.volume import Volume
from .export_record import export_provenance
from .remembered import last_export_format, last_folder, remember_export_format, remember_folder
from .session import Session
from .workers import Job, start

#: Core format key -> (name shown, default extension).
FORMATS = {
    "hdf5": ("HDF5", ".h5"),
    "jpeg": ("JPEG", ".jpg"),
    "png": ("PNG", ".png"),
    "raw": ("RAW", ".raw"),
    "tiff": ("TIFF", ".tif"),
    "pdf": ("PDF", ".pdf"),
}
#: What a file can hold -> its label. ``all`` is raw + masks + probabilities, ``report`` the PDF.
CONTENTS = {
    "raw": "Raw image",
    "mask": "Mask of one object (0/255)",
    "overlay": "Overlay: image with the visible objects' masks",
    "all": "Raw + masks + probabilities",
    "report": "Report: raw | overlay per slice, metrics, provenance",
}
_PIXELS = ("raw", "mask", "overlay")
#: The contents the core writes for each format.
ALLOWED = {"hdf5": ("all",), "pdf": ("report",), "png": _PIXELS, "jpeg": _PIXELS, "tiff": _PIXELS, "raw": _PIXELS}


def _label(key: str) -> str:
    return OBJECTS[key].label if key in OBJECTS else key


def _box(layout: QBoxLayout, *items) -> QBoxLayout:
    """Add widgets and nested layouts to ``layout``, in order; returns it."""
    for item in items:
        if isinstance(item, QLayout):
            layout.addLayout(item)
        else:
            layout.addWidget(item)
    return layout


def _radio_group(parent: QWidget, labels: Mapping[str, str]) -> tuple[QButtonGroup, dict[str, QRadioButton]]:
    group, buttons = QButtonGroup(parent), {key: QRadioButton(text) for key, text in labels.items()}
    for button in buttons.values():
        group.addButton(button)
    return group, buttons


def session_masks_volumes(
    session: Session, slices: Sequence[int] | None = None, objects: Sequence[str] | None = None
) -> dict[str, Volume]:
    """The session's per-slice masks as lazy mask Volumes for the core.

    Parameters
    ----------
    session
        Holds the open volume and ``masks`` (``{object: {z: (Y, X) bool}}``).
    slices
        0-based slices that will be exported (all by default).
    objects
        Keys to consider (every object with masks by default).

    Returns
    -------
    Object key -> ``(Z, Y, X)`` uint8 Volume (0 or 255): see :func:`~emviewer.core.export.mask_volumes`,
    which raises :class:`InputError` naming the slices when an object has masks on some of the
    exported slices but not all.
    """
    return mask_volumes(_open_volume(session), session.masks, slices, objects)


def session_probability_volumes(
    session: Session, slices: Sequence[int] | None = None, objects: Sequence[str] | None = None
) -> dict[str, Volume]:
    """Like :func:`session_masks_volumes` for the probabilities: ``(Z, Y, X)`` float32 in [0, 1]."""
    return probability_volumes(_open_volume(session), session.probabilities, slices, objects)


def _open_volume(session: Session) -> Volume:
    if session.volume is None:
        raise InputError(None, "no stack is open")
    return session.volume


class ExportDialog(QDialog):
    """Choose format, content, slices and file; the export runs in a background job.

    Parameters
    ----------
    session
        The app state to export from (read only).
    metrics_provider
        Optional callable returning the evaluation dict (``per_image`` and ``mean``, or
        ``None``) for the PDF report's metrics table.
    settings
        Where the last export format and folder are remembered (None: nothing is).
    """

    exportStarted = Signal(object)  # the Job, just before it is queued
    exportFinished = Signal(list)  # the written files (pathlib.Path)
    exportFailed = Signal(str)  # the message shown to the user
    exportCancelled = Signal()

    def __init__(
        self,
        session: Session,
        metrics_provider: Callable[[], dict | None] | None = None,
        parent: QWidget | None = None,
        settings: QSettings | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.session, self.metrics_provider = session, metrics_provider
        self.remembered = settings  # (``self.settings`` is the form)
        self.job: Job | None = None
        self.running, self._closing, self.last_error = False, False, ""
        self.error_box: QMessageBox | None = None
        self._build()
        self.format_box.currentIndexChanged.connect(self._on_format_changed)
        self.content_group.buttonToggled.connect(self._on_content_toggled)
        self.slice_group.buttonToggled.connect(self._on_slices_toggled)
        self.browse_button.clicked.connect(self._on_browse_clicked)
        self.export_button.clicked.connect(self.start_export)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        session.masksChanged.connect(self._on_masks_changed)
        self._on_masks_changed(-1)
        remembered = None if settings is None else last_export_format(settings, FORMATS)
        if remembered is not None:
            self.format_box.setCurrentIndex(self.format_box.findData(remembered))
        self._on_format_changed()
        self._on_slices_toggled()

    def _build(self) -> None:
        self.format_box = QComboBox()
        for key, (name, _) in FORMATS.items():
            self.format_box.addItem(name, key)
        self.content_group, self.content_buttons = _radio_group(self, CONTENTS)
        self.object_box = QComboBox()
        self.object_box.setToolTip("the object whose mask is exported")
        self.slice_group, self.slice_buttons = _radio_group(
            self, {"all": "All", "current": "Current", "range": "Range"}
        )
        self.slice_buttons["all"].setChecked(True)
        self.range_edit = QLineEdit(placeholderText="e.g. 1-5,10 (as the slider counts)")
        self.path_edit, self.browse_button = QLineEdit(), QPushButton("Browse...")
        self.settings = QWidget()
        form = QFormLayout(self.settings)
        form.addRow("Format", self.format_box)
        form.addRow("Include", _box(QVBoxLayout(), *self.content_buttons.values(), self.object_box))
        form.addRow("Slices", _box(QHBoxLayout(), *self.slice_buttons.values(), self.range_edit))
        form.addRow("File", _box(QHBoxLayout(), self.path_edit, self.browse_button))
        self.progress, self.status = QProgressBar(), QLabel("")
        self.export_button, self.cancel_button = QPushButton("Export", default=True), QPushButton("Cancel")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        _box(
            QVBoxLayout(self),
            self.settings,
            self.progress,
            self.status,
            _box(buttons, self.export_button, self.cancel_button),
        )

    # ------------------------------------------------------------------ choices

    def chosen_format(self) -> str:
        return self.format_box.currentData()

    def chosen_content(self) -> str | None:
        return next((key for key, button in self.content_buttons.items() if button.isChecked()), None)

    def chosen_slices(self) -> list[int]:
        """The 0-based slices to export; raises :class:`InputError` for a bad range."""
        n = len(_open_volume(self.session))
        if self.slice_buttons["current"].isChecked():
            return [self.session.z]
        if self.slice_buttons["range"].isChecked():
            text = self.range_edit.text().strip()
            if not text:
                raise InputError(None, "type the slices to export, like 1-5,10, or choose all slices")
            return parse_slices(text, n, first=1)  # numbered as the slider counts; each slice once
        return list(range(n))

    def _on_format_changed(self, _index: int = 0) -> None:
        fmt = self.chosen_format()
        for key, button in self.content_buttons.items():
            button.setEnabled(key in ALLOWED[fmt])
        if self.chosen_content() not in ALLOWED[fmt]:
            self.content_buttons[ALLOWED[fmt][-1] if self.session.masks else ALLOWED[fmt][0]].setChecked(
                True
            )  # overlay once there are masks
        text = self.path_edit.text().strip()
        if text and Path(text).suffix.lower() not in [ext for ext, f in EXTENSION_FORMATS.items() if f == fmt]:
            self.path_edit.setText(str(Path(text).with_suffix(FORMATS[fmt][1])))

    def _on_content_toggled(self, *_args) -> None:
        self.object_box.setEnabled(self.chosen_content() == "mask")

    def _on_slices_toggled(self, *_args) -> None:
        self.range_edit.setEnabled(self.slice_buttons["range"].isChecked())

    def _on_masks_changed(self, _z: int) -> None:
        chosen = self.object_box.currentData()
        keys = [key for key, planes in self.session.masks.items() if planes]
        if keys == [self.object_box.itemData(i) for i in range(self.object_box.count())]:
            return
        self.object_box.clear()
        for key in keys:
            self.object_box.addItem(_label(key), key)
        self.object_box.setCurrentIndex(max(self.object_box.findData(chosen), 0))

    def _on_browse_clicked(self) -> None:
        name, ext = FORMATS[self.chosen_format()]
        start_in = self.path_edit.text() or (last_folder(self.remembered) if self.remembered is not None else "")
        path, _ = QFileDialog.getSaveFileName(self, "Export to", start_in, f"{name} (*{ext});;All files (*)")
        if path:
            self.path_edit.setText(path)
            fmt = EXTENSION_FORMATS.get(Path(path).suffix.lower())
            if fmt is not None:
                self.format_box.setCurrentIndex(self.format_box.findData(fmt))

    # ------------------------------------------------------------------ export

    def export_to(
        self, path, content: str | None = None, slices_text: str | None = None, object_key: str | None = None
    ) -> None:
        """Set the fields and start the export (for scripts and tests: no file dialog).

        ``path``'s extension picks the format; ``content`` is one of :data:`CONTENTS` (``None``
        keeps the current choice, which a format change resets to that format's default); ``slices_text``
        is ``None`` (all), ``"current"`` or a range like ``"0-4,9"``; ``object_key`` picks the object of a mask export.
        """
        fmt = EXTENSION_FORMATS.get(Path(path).suffix.lower())
        if fmt is not None:
            self.format_box.setCurrentIndex(self.format_box.findData(fmt))
        self.path_edit.setText(str(path))
        if content in self.content_buttons:
            self.content_buttons[content].setChecked(True)
        elif content is not None:
            self._show_error(f"unknown content {content!r}; choose from {', '.join(CONTENTS)}")
            return
        if slices_text is None:
            self.slice_buttons["all"].setChecked(True)
        elif slices_text == "current":
            self.slice_buttons["current"].setChecked(True)
        else:
            self.slice_buttons["range"].setChecked(True)
            self.range_edit.setText(slices_text)
        if object_key is not None:
            self.object_box.setCurrentIndex(self.object_box.findData(object_key))
        self.start_export()

    def start_export(self) -> None:
        """Check the choices and run the export in a background job (errors go to a message box)."""
        if self.running:
            return
        try:
            out, arguments = self._request()
        except InputError as exc:
            self._show_error(str(exc))
            return
        volume = self.session.volume
        assert volume is not None, "_request raises InputError when no stack is open"

        def work(progress, cancel, _emit):
            return export(out, volume, progress=progress, cancel=cancel, **arguments)

        self.job = Job(work)
        self.job.signals.progressed.connect(self._on_progressed)
        self.job.signals.finished.connect(self._on_finished)
        self.job.signals.failed.connect(self._on_failed)
        self.job.signals.cancelled.connect(self._on_cancelled)
        self._set_running(True)
        self.status.setText(f"exporting to {out.name}...")
        self.exportStarted.emit(self.job)
        start(self.job)

    def _request(self) -> tuple[Path, dict]:
        """The output path and the keyword arguments for :func:`~emviewer.core.export.export`."""
        volume = self.session.volume
        if volume is None:
            raise InputError(None, "open a stack before exporting")
        text = self.path_edit.text().strip()
        if not text:
            raise InputError(None, "choose the file to export to")
        out, fmt, content = Path(text).expanduser(), self.chosen_format(), self.chosen_content()
        if not out.suffix:  # "report" -> "report.pdf": the format is chosen, the name need not repeat it
            out = out.with_name(out.name + FORMATS[fmt][1])
            self.path_edit.setText(str(out))
        if format_of(out) != fmt:
            raise InputError(
                out,
                f"the name ends in {out.suffix}, not a {FORMATS[fmt][0]} extension; "
                f"name it {out.stem}{FORMATS[fmt][1]} or choose another format",
            )
        if content not in ALLOWED[fmt]:
            raise InputError(
                out,
                f"{FORMATS[fmt][0]} export holds "
                f"{' or '.join(CONTENTS[c].lower() for c in ALLOWED[fmt])}, not {content}",
            )
        slices = self.chosen_slices()
        record = export_provenance(self.session, content, slices)
        visible = [key for key in self.session.masks if self.session.visible.get(key, True)]
        if content == "all":
            masks = session_masks_volumes(self.session, slices)
            probabilities = session_probability_volumes(self.session, slices)
            return out, {"masks": masks, "probabilities": probabilities, "slices": slices, "provenance": record}
        if content == "report":
            metrics = self.metrics_provider() if self.metrics_provider is not None else None
            return out, {
                "masks": session_masks_volumes(self.session, slices, visible),
                "slices": slices,
                "metrics": metrics,
                "provenance": record,
                "colours": dict(self.session.colours),
            }
        if content == "raw":
            return out, {"content": "raw", "slices": slices}
        objects = visible if content == "overlay" else [self.object_box.currentData()]
        masks = session_masks_volumes(self.session, slices, objects)
        if not masks:
            what = "no visible object has" if content == "overlay" else f"{_label(objects[0] or 'the object')} has"
            raise InputError(None, f"{what} masks on the chosen slices: predict first, or export the raw image")
        opacity = {key: self.session.opacity.get(key, 0.45) for key in masks}
        colours = dict(self.session.colours)
        return out, {"masks": masks, "content": content, "slices": slices, "opacity": opacity, "colours": colours}

    def _set_running(self, running: bool) -> None:
        self.running = running
        self.settings.setEnabled(not running)
        self.export_button.setEnabled(not running)
        if running:
            self.progress.setValue(0)

    def _on_progressed(self, done: int, total: int, message: str, _seconds_left: float) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self.status.setText(message)

    def _on_finished(self, paths) -> None:
        self._set_running(False)
        self.progress.setValue(self.progress.maximum())
        self.status.setText(f"wrote {len(paths)} file{'s' if len(paths) != 1 else ''}")
        if self.remembered is not None and paths:
            remember_export_format(self.remembered, self.chosen_format())
            remember_folder(self.remembered, Path(paths[0]).parent)
        self.exportFinished.emit(list(paths))
        self.accept()

    def _on_failed(self, message: str) -> None:
        self._set_running(False)
        self._show_error(message)
        if self._closing:
            super().reject()

    def _on_cancelled(self) -> None:
        self._set_running(False)
        self.progress.setValue(0)
        self.status.setText("cancelled: nothing was written")
        self.exportCancelled.emit()
        if self._closing:
            super().reject()

    def _on_cancel_clicked(self) -> None:
        if self.running:
            assert self.job is not None, "start_export sets the job before it runs"
            self.job.cancel()
            self.status.setText("cancelling...")
        else:
            self.reject()

    def reject(self) -> None:
        """Close; a running export is cancelled first and the dialog closes once it has stopped."""
        if self.running:
            self._closing = True
            assert self.job is not None, "start_export sets the job before it runs"
            self.job.cancel()
            return
        super().reject()

    def _show_error(self, message: str) -> None:
        self.last_error = message
        self.status.setText("")
        self.error_box = QMessageBox(QMessageBox.Icon.Warning, "Export", message, QMessageBox.StandardButton.Ok, self)
        self.error_box.open()
        self.exportFailed.emit(message)
