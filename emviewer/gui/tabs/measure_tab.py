"""The measure tab: the objects of one object's masks (count, slices, centroid, size, shape) in a
sortable table, exported to CSV.

The measurement is :func:`emviewer.core.measure.measure_objects` (as ``emviewer measure``), run in a
background job over the session's masks; slices not predicted count as empty. Clicking a row emits
``objectChosen(z, y, x)`` with the object's centroid so the viewer can go there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ...core.io.describe import format_pixel_size
from ...core.measure import ObjectTable, PixelSize, measure_slices, write_csv
from ...core.objects import OBJECTS
from ...core.progress import CancelToken, Progress
from ...core.volume import Volume
from ..session import Session
from ..workers import Job, start

SORT_ROLE = Qt.ItemDataRole.UserRole  # the cell's number, so columns sort as numbers
STALE = "masks changed since this measurement: Measure again"
Index = QModelIndex | QPersistentModelIndex


def _text(value: float | int) -> str:
    """A cell as the CSV writes it: integers whole, other numbers to 6 significant digits."""
    return str(value) if isinstance(value, int) else f"{value:.6g}"


class ObjectTableModel(QAbstractTableModel):
    """An :class:`ObjectTable` for a view: headers are its columns, one row per object.

    The display role gives the text, :data:`SORT_ROLE` the value as a ``float``.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.table: ObjectTable | None = None
        self._names: list[str] = []
        self._rows: list[list[float | int]] = []

    def set_table(self, table: ObjectTable | None) -> None:
        self.beginResetModel()
        self.table = table
        self._names = [] if table is None else list(table.columns)
        self._rows = [] if table is None else [list(row.values()) for row in table.rows()]
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._names)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        value = self._rows[index.row()][index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return _text(value)
        if role == SORT_ROLE:
            return float(value)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self._names[section]
        return None

    def value(self, row: int, column: str) -> float:
        """The number in source ``row`` under ``column``."""
        return float(self._rows[row][self._names.index(column)])


@dataclass
class Measurement:
    """What a measure job returns: the table and which slices of which object it covered."""

    key: str
    table: ObjectTable
    measured: int  # slices with masks (the others counted as empty)
    slices: int  # slices in the stack
    fraction: float  # kept object voxels / voxels of the measured slices


def measure_session_masks(
    key: str,
    masks: dict[int, np.ndarray],
    volume: Volume,
    pixel_size: PixelSize | None,
    min_size: int,
    per_slice: bool,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Measurement:
    """Measure one object's per-slice masks (``{z: (Y, X) bool}``, at least one) on ``volume``
    with :func:`~emviewer.core.measure.measure_slices`; the fraction is of the slices with a mask."""
    table = measure_slices(masks, volume, pixel_size, min_size, per_slice, progress, cancel)
    area = len(masks) * volume.shape[1] * volume.shape[2]
    return Measurement(key, table, len(masks), len(volume), float(np.count_nonzero(table.labels)) / area)


class MeasureTab(QWidget):
    """Count and measure the objects of one object's masks in the session.

    Parameters
    ----------
    session
        The app state: the open volume, its voxel size and per-slice masks (read only).

    Signals
    -------
    objectChosen(int z, float y, float x)
        A row was clicked: the object's centroid, ``z`` rounded to the nearest slice (0-based),
        ``y`` and ``x`` in pixels.
    measured(object)
        A measurement finished (its :class:`Measurement`).
    failed(str)
        A one-line message (measurement or CSV export failed).
    """

    objectChosen = Signal(int, float, float)
    measured = Signal(object)
    failed = Signal(str)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.job: Job | None = None
        self.running = False
        self.result: Measurement | None = None
        self.stale = False
        self.last_export_path: Path | None = None
        self._changes = 0  # masks or voxel-size changes seen, to tell a result measured before one
        self._stack = 0  # stacks opened: a result for an earlier stack is dropped
        self._build()
        self.measure_button.clicked.connect(self.measure)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.export_button.clicked.connect(self.export_csv_dialog)
        self.view.clicked.connect(self._on_row_clicked)
        session.volumeChanged.connect(self._on_volume_changed)
        session.masksChanged.connect(self._on_masks_changed)
        session.pixelSizeChanged.connect(self._on_pixel_size_changed)
        self._on_volume_changed()

    def _build(self) -> None:
        self.object_box = QComboBox()
        self.per_slice_check = QCheckBox("per slice (2D)")
        self.per_slice_check.setToolTip(
            "Objects as 2D components of each slice (areas) instead of 3D components across slices (volumes)"
        )
        self.min_size_spin = QSpinBox()
        self.min_size_spin.setRange(0, 1_000_000_000)
        self.min_size_spin.setToolTip("Objects of fewer pixels (voxels in 3D) are left out")
        self.measure_button, self.cancel_button = QPushButton("Measure"), QPushButton("Cancel")
        self.export_button = QPushButton("Export CSV...")
        grid = QGridLayout()
        grid.addWidget(QLabel("Object"), 0, 0)
        grid.addWidget(self.object_box, 0, 1)
        grid.addWidget(self.per_slice_check, 1, 1)
        grid.addWidget(QLabel("Minimum size"), 2, 0)
        grid.addWidget(self.min_size_spin, 2, 1)
        buttons = QHBoxLayout()
        for button in (self.measure_button, self.cancel_button, self.export_button):
            buttons.addWidget(button)
        self.status, self.header, self.summary = QLabel(""), QLabel(""), QLabel("")
        for label in (self.status, self.header, self.summary):
            label.setWordWrap(True)
        self.model = ObjectTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # by id, 1 first (Qt's default indicator is descending)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().setVisible(False)
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.header)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.summary)

    # ------------------------------------------------------------------ measuring

    def _pixel_size(self, per_slice: bool) -> tuple[PixelSize | None, str]:
        """The voxel size to measure with, and the header's words on the units."""
        volume = self.session.volume
        size = None if volume is None else volume.pixel_size
        if size is None:
            return None, "sizes in pixels: the stack has no voxel size (set one with File > Voxel size...)"
        if size[0] is None and not per_slice:
            return None, "sizes in voxels: the slice spacing (z) is unknown (set it with File > Voxel size...)"
        return size, f"sizes in µm (voxel size {format_pixel_size(size)})"

    def measure(self) -> None:
        """Measure the chosen object's masks in a background job; the table shows the result."""
        volume, key = self.session.volume, self.object_box.currentData()
        masks = dict(self.session.masks.get(key, {})) if key is not None else {}
        if self.running or volume is None or not masks:
            if not self.running:
                self.status.setText("there are no masks to measure: predict first")
            return
        per_slice, min_size = self.per_slice_check.isChecked(), self.min_size_spin.value()
        pixel_size, units = self._pixel_size(per_slice)
        changes, stack = self._changes, self._stack

        def work(progress, cancel, _emit):
            return measure_session_masks(key, masks, volume, pixel_size, min_size, per_slice, progress, cancel)

        self.job = Job(work)
        self.job.signals.progressed.connect(self._on_progressed)
        self.job.signals.finished.connect(lambda result: self._on_finished(result, units, changes, stack))
        self.job.signals.failed.connect(self._on_failed)
        self.job.signals.cancelled.connect(self._on_cancelled)
        self._set_running(True)
        start(self.job)

    def _set_running(self, running: bool) -> None:
        self.running = running
        ready = not running and self.session.volume is not None and self.object_box.count() > 0
        self.measure_button.setEnabled(ready)
        self.cancel_button.setEnabled(running)
        self.export_button.setEnabled(not running and self.result is not None)
        if running:
            self.status.setText("measuring...")

    def _on_progressed(self, done: int, total: int, message: str, _seconds_left: float) -> None:
        self.status.setText(f"{message} ({done} / {total})")

    def _on_finished(self, result: Measurement, units: str, changes: int, stack: int) -> None:
        if stack != self._stack:  # measured on the stack open before
            self._set_running(False)
            return
        self.result = result
        self._set_running(False)
        table = result.table
        self.model.set_table(table)
        self.view.resizeColumnsToContents()
        label = OBJECTS[result.key].label if result.key in OBJECTS else result.key
        self.header.setText(f"{label}: {table.dims}D objects; {units}")
        what = "volume" if table.dims == 3 else "area"
        count = f"{len(table)} object{'' if len(table) == 1 else 's'} ({table.dims}D)"
        self.summary.setText(
            f"{count}, total {what} {table.total_size:.6g} {table.size_unit}, "
            f"{what} fraction {100 * result.fraction:.3g} % of the measured slices"
        )
        self.stale = changes != self._changes
        self.status.setText(
            STALE
            if self.stale
            else f"measured {result.measured} of {result.slices} slices (slices not predicted count as empty)"
        )
        self.measured.emit(result)

    def _on_failed(self, message: str) -> None:
        self._set_running(False)
        self.status.setText(message)
        self.failed.emit(message)

    def _on_cancelled(self) -> None:
        self._set_running(False)
        self.status.setText("measurement cancelled")

    def _on_cancel_clicked(self) -> None:
        if self.job is not None:
            self.job.cancel()

    # ------------------------------------------------------------------ table

    def _on_row_clicked(self, index: QModelIndex) -> None:
        row = self.proxy.mapToSource(index).row()
        z = int(np.floor(self.model.value(row, "centroid_z_px") + 0.5))
        self.objectChosen.emit(z, self.model.value(row, "centroid_y_px"), self.model.value(row, "centroid_x_px"))

    def export_csv(self, path: str | Path) -> Path:
        """Write the table shown to ``path`` (``.csv`` added when missing) and remember it in
        :attr:`last_export_path`.

        Raises
        ------
        RuntimeError
            Nothing has been measured yet.
        OSError
            The file cannot be written.
        """
        if self.result is None:
            raise RuntimeError("nothing has been measured yet")
        path = Path(path)
        if path.suffix.lower() != ".csv":
            path = path.with_name(path.name + ".csv")
        self.last_export_path = write_csv(self.result.table, path)
        self.status.setText(f"wrote {len(self.result.table)} objects to {path}")
        return self.last_export_path

    def export_csv_dialog(self) -> None:
        """Ask where to write the table (``.csv`` added when missing) and write it; a failure goes
        to the status line and :attr:`failed`."""
        if self.result is None:
            self.status.setText("nothing to export yet: Measure first")
            return
        start_at = str(self.last_export_path or f"{self.result.key}_objects.csv")
        path, _ = QFileDialog.getSaveFileName(self, "Export objects as CSV", start_at, "CSV (*.csv)")
        if not path:
            return
        try:
            self.export_csv(path)
        except OSError as exc:
            message = f"{path}: {exc.strerror or exc}"
            self.status.setText(message)
            self.failed.emit(message)

    # ------------------------------------------------------------------ session

    def _mark_stale(self, message: str) -> None:
        self._changes += 1
        if self.result is not None:
            self.stale = True
            self.status.setText(message)

    def _on_masks_changed(self, _z: int) -> None:
        self._refresh_objects()
        self._mark_stale(STALE)

    def _on_pixel_size_changed(self) -> None:
        self._mark_stale("the voxel size changed since this measurement: Measure again")

    def _refresh_objects(self) -> None:
        keys = [
            k for k in list(OBJECTS) + [k for k in self.session.masks if k not in OBJECTS] if self.session.masks.get(k)
        ]
        if keys != [self.object_box.itemData(i) for i in range(self.object_box.count())]:
            current = self.object_box.currentData()
            self.object_box.clear()
            for key in keys:
                self.object_box.addItem(OBJECTS[key].label if key in OBJECTS else key, key)
            if current in keys:
                self.object_box.setCurrentIndex(keys.index(current))
        self._set_running(self.running)

    def _on_volume_changed(self) -> None:
        if self.running:
            assert self.job is not None, "measure sets the job before it runs"
            self.job.cancel()
        volume = self.session.volume
        single = volume is not None and len(volume) == 1
        self.per_slice_check.setChecked(single)  # as the core: 3D for a stack, 2D for a single image
        self.per_slice_check.setEnabled(not single)
        had_result = self.result is not None
        self._changes, self._stack = self._changes + 1, self._stack + 1
        self.result, self.stale = None, False
        self.model.set_table(None)
        self.header.setText("")
        self.summary.setText("")
        self.status.setText("a new stack was opened since the last measurement: Measure again" if had_result else "")
        self._refresh_objects()
