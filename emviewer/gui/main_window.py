"""The main window: wires the session, the viewer, the segmentation panel and the jobs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from .. import config
from ..core.backend import keras_backend
from ..core.errors import ChannelChoiceError, InputError, ReportedError
from ..core.io import ReadOptions, open_volume
from ..core.io.describe import format_pixel_size
from ..core.models.registry import resolve_models
from ..core.predict import SliceResult
from . import remembered
from .adapt_wiring import wire_adaptation
from .export_dialog import ExportDialog
from .file_options import ChannelDialog, PixelSizeDialog
from .help_menu import show_shortcuts
from .online_panel import OnlinePanel
from .predict_panel import PredictPanel
from .prediction_work import (
    THIS_COMPUTER,
    LocalPredictors,
    device_text,
    offline_work,
    online_work,
    region_volume,
    run_record,
)
from .recent_files import RecentFiles
from .session import Session
from .tabs import EvaluateTab, MeasureTab, TrainTab
from .unsaved import Answer, CorrectionsDialog, ask_before_discarding, mark_exported, prepare_save
from .viewer import ContrastPanel, EditToolbar, MaskEditor, SideBySideView, SliceSlider
from .viewer.slice_slider import add_slice_keys
from .workers import Job, PredictionJob, start


class MainWindow(QMainWindow):
    """Open a stack, look at it raw | overlay, predict, and see results slice by slice."""

    predictionFinished = Signal()
    predictionStopped = Signal(str)  # "cancelled" or the error message
    errorShown = Signal(str)
    backendLoaded = Signal(object)  # the compute device (text), once the ML backend is loaded

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("EMViewer")
        self.resize(1400, 800)
        self.setAcceptDrops(True)
        self.session = Session(self)
        self.settings = settings if settings is not None else QSettings("EMViewer", "EMViewer")
        self.job: Job | None = None
        self.predicting = False  # a Predict job runs (until its finished, failed or cancelled signal)
        self._run = 0  # the session's id of the running Predict
        self._region: tuple[int, tuple[int, int, int, int]] | None = None  # (index shift, box) of a region Predict
        self._may_close = False  # the user chose Save or Discard: close without asking again
        self.predictors = LocalPredictors()  # each model loaded and warmed up once per app session
        self.last_error = ""
        self.models = config.installed_models()
        self.viewer = SideBySideView(self.session)
        self.editor = MaskEditor(self.session, self.viewer, self)
        self.slider = SliceSlider(self.session)
        self.contrast = ContrastPanel(self.session)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.viewer, 1)
        layout.addWidget(self.slider)
        layout.addWidget(self.contrast)
        self.setCentralWidget(central)
        self.panel = PredictPanel(self.session, self.models)
        self.online = OnlinePanel(self.settings)
        self.panel.add_section(self.online)
        self.evaluate_tab = EvaluateTab(self.session, predictor_factory=self._predictor_for)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.panel, "Segment")
        self.train_tab = TrainTab(self.settings, session=self.session)
        self.tabs.addTab(self.train_tab, "Train")
        self.tabs.addTab(self.evaluate_tab, "Evaluate")
        self.measure_tab = MeasureTab(self.session)
        self.tabs.addTab(self.measure_tab, "Measure")
        dock = QDockWidget("", self)
        dock.setObjectName("sidePanel")  # saveState skips a dock without a name
        dock.setWidget(self.tabs)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.resizeDocks([dock], [400], Qt.Orientation.Horizontal)  # the images get the rest of the window
        self._build_menus()
        self._build_status_bar()
        remembered.restore_window(self, self.settings)
        remembered.restore_display(self.session, self.settings)
        self.session.volumeChanged.connect(lambda: remembered.restore_levels(self.session, self.settings))
        self.train_tab.modelTrained.connect(self._on_model_trained)
        wire_adaptation(self)
        self.evaluate_tab.evaluationFailed.connect(self.show_error)
        self.evaluate_tab.robustnessFailed.connect(self.show_error)
        self.measure_tab.objectChosen.connect(self._on_object_chosen)
        self.measure_tab.failed.connect(self.show_error)
        self.panel.predictRequested.connect(self._on_predict_requested)
        self.panel.predictRegionRequested.connect(self._on_predict_region_requested)
        self.panel.cancelRequested.connect(self._on_cancel_requested)
        self.viewer.cursorMoved.connect(self._on_cursor_moved)
        self.session.volumeChanged.connect(self._on_volume_changed)
        self.session.pixelSizeChanged.connect(self._show_pixel_size)
        self._load_backend()

    # ------------------------------------------------------------------ building

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "Open &file...", self._on_open_file, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open f&older of slices...", self._on_open_folder, "Ctrl+Shift+O")
        self._action(file_menu, "Open &sample stack", lambda: self.open_path(config.sample_stack()))
        self.recent_menu = file_menu.addMenu("&Recent files")
        self.recent = RecentFiles(self.settings, self.recent_menu, self.open_path)
        self._action(file_menu, "Open prediction &masks...", self._on_open_masks)
        self._action(file_menu, "&Export...", self._on_export, "Ctrl+E")
        self._action(file_menu, "Export objects as &CSV...", self.measure_tab.export_csv_dialog)
        self._action(file_menu, "&Voxel size...", self._on_pixel_size)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        view = QToolBar("View")
        view.setObjectName("viewToolbar")
        self.addToolBar(view)
        self._action(view, "Zoom in", self.viewer.zoom_in, QKeySequence.StandardKey.ZoomIn)
        self._action(view, "Zoom out", self.viewer.zoom_out, QKeySequence.StandardKey.ZoomOut)
        # Ctrl+0 / Ctrl+1, not F / 1: those keys belong to the mask editor (fill), as in napari
        self._action(view, "Fit", self.viewer.fit, "Ctrl+0")
        self._action(view, "1:1", self.viewer.one_to_one, "Ctrl+1")
        for widget in (self.viewer, self.slider):  # wherever the focus is in the images or the slider
            add_slice_keys(widget, self.session)
        self.edit_toolbar = EditToolbar(self.editor, self)
        self.edit_toolbar.setObjectName("editToolbar")
        self.addToolBar(self.edit_toolbar)
        edit_menu = self.menuBar().addMenu("&Edit")
        edit_menu.addAction(self.edit_toolbar.undo_action)  # the toolbar's own actions: one Ctrl+Z, not two
        edit_menu.addAction(self.edit_toolbar.redo_action)
        self.editor.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", self.show_shortcuts, QKeySequence.StandardKey.HelpContents)

    def _load_backend(self) -> None:
        """Load the ML backend in the background now: its libraries take seconds to load and
        hold Python's lock meanwhile, which would freeze the window if it happened at Predict."""

        def work(progress, cancel, emit):
            text = device_text()
            # the default model too: loading one holds Python's lock for a moment;
            # InputError: no model installed yet, nothing to preload
            with contextlib.suppress(InputError):
                self.predictors.get(resolve_models({"mito": None}, "fast", self.models), "fast")
            return text

        self._backend_job = Job(work)
        self._backend_job.signals.finished.connect(self._on_backend_loaded)
        self._backend_job.signals.finished.connect(self.backendLoaded)
        start(self._backend_job)

    def _on_backend_loaded(self, text: str) -> None:
        self._local_device = text
        self._on_online_switched(self.online.is_online())

    def _on_online_switched(self, _online: bool) -> None:
        """The status bar says where Predict will run: this computer's device, or the server."""
        self.device_label.setText(self.online.status_text() or self._local_device)

    def _build_status_bar(self) -> None:
        self._local_device = f"Keras backend: {keras_backend()} (loading...)"
        self.device_label = QLabel(self.online.status_text() or self._local_device)
        self.online.modeChanged.connect(self._on_online_switched)
        self.size_label = QLabel("")
        self.voxel_label = QLabel("")
        self.pixel_label = QLabel("")
        for widget in (self.pixel_label, self.size_label, self.voxel_label, self.device_label):
            self.statusBar().addPermanentWidget(widget)

    # ------------------------------------------------------------------ files

    def open_path(self, path, options: ReadOptions | None = None) -> bool:
        """Open a stack; a problem is shown in a dialog and the current stack stays.

        A file with several channels opens a dialog asking which one, then opens again."""
        try:
            volume = open_volume(path, options)
        except ChannelChoiceError as exc:
            self._ask_channel(path, exc)
            return False
        except InputError as exc:
            self.show_error(str(exc))
            return False
        if not self.confirm_discard("opening another stack", lambda: self._show_stack(volume, path), volume.close):
            return False  # opened once the question is answered with Save or Discard
        self._show_stack(volume, path)
        return True

    def _show_stack(self, volume, path) -> None:
        self.session.open(volume)
        self.recent.remember(str(path))

    def confirm_discard(
        self, action: str, proceed: Callable[[], None], abandon: Callable[[], None] | None = None
    ) -> bool:
        """True when nothing would be lost by ``action`` (no unsaved result, no Predict running).

        Otherwise asks Save / Discard / Cancel (:func:`ask_before_discarding`, kept as ``discard_box``)
        and returns False: Discard stops a running Predict and calls ``proceed``; Save stops it, opens
        the export dialog set to HDF5 and calls ``proceed`` once the export is written; Cancel (or
        closing the export dialog) calls ``abandon``.
        """
        if not (self.session.unsaved or self.predicting):
            return True
        box = ask_before_discarding(self, action, self.session.unsaved, self.predicting)
        box.buttonClicked.connect(lambda button: self._on_discard_answer(box.standardButton(button), proceed, abandon))
        self.discard_box = box
        return False

    def _on_discard_answer(self, answer, proceed: Callable[[], None], abandon: Callable[[], None] | None) -> None:
        if answer not in (Answer.Save, Answer.Discard):
            if abandon is not None:
                abandon()
            return
        if self.predicting and self.job is not None:
            self.job.cancel()
        if answer == Answer.Discard:
            proceed()
            return
        dialog = self._on_export()
        assert dialog is not None, "there are results to save only while a stack is open"
        prepare_save(dialog, self.session)
        dialog.exportFinished.connect(lambda _paths: proceed())
        if abandon is not None:
            dialog.rejected.connect(abandon)
        self.save_dialog = dialog

    def _ask_channel(self, path, error: ChannelChoiceError) -> None:
        dialog = ChannelDialog(
            f"{error.path} holds {error.channels} channels (axes {error.axes}).", error.channels, self
        )
        dialog.channelChosen.connect(lambda channel: self.open_path(path, ReadOptions(channel=channel)))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self.file_dialog: QDialog = dialog  # the open channel or voxel-size dialog

    def _on_pixel_size(self) -> PixelSizeDialog | None:
        if self.session.volume is None:
            self.show_error("Open a stack first (File > Open, or drop a file here).")
            return None
        dialog = PixelSizeDialog(self.session.volume.pixel_size, self)
        dialog.pixelSizeChosen.connect(self.session.set_pixel_size)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self.file_dialog = dialog
        return dialog

    def _on_open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open image or stack",
            remembered.last_folder(self.settings),
            "Images and stacks (*.tif *.tiff *.png *.jpg *.jpeg *.h5 *.hdf5 *.mrc *.raw *.zip);;All files (*)",
        )
        if path:
            remembered.remember_folder(self.settings, path)
            self.open_path(path)

    def _on_open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Open a folder of slices or a Zarr store", remembered.last_folder(self.settings)
        )
        if path:
            remembered.remember_folder(self.settings, Path(path).parent)
            self.open_path(path)

    def _on_open_masks(self) -> None:
        if self.session.volume is None:
            self.show_error("Open the image stack first, then the masks predicted from it.")
            return
        path = QFileDialog.getExistingDirectory(
            self, "Open the masks of a prediction store (OUT.zarr)", remembered.last_folder(self.settings)
        )
        if path:
            self.open_masks(path)

    def open_masks(self, path) -> bool:
        """Show the masks of an OME-Zarr prediction store (``emviewer predict -o OUT.zarr``, on
        this computer or a cluster) over the open stack; a problem is shown in a dialog."""
        from ..core.prediction_zarr import open_store_masks

        try:
            masks, done, record = open_store_masks(path)
            self.session.show_stored_masks(masks, done, record)
        except (InputError, ValueError) as exc:
            self.show_error(str(exc))
            return False
        slices = len(next(iter(masks.values()))) if masks else 0
        self.statusBar().showMessage(f"{path}: {', '.join(masks)} on {len(done)} of {slices} slices", 10000)
        return True

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt override)
        urls = event.mimeData().urls()
        if urls:
            self.open_path(urls[0].toLocalFile())

    def _on_export(self) -> ExportDialog | None:
        if self.session.volume is None:
            self.show_error("Open a stack first (File > Open, or drop a file here).")
            return None
        dialog = ExportDialog(
            self.session, metrics_provider=self.evaluate_tab.last_metrics, parent=self, settings=self.settings
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)  # it stays open until a running export stops
        dialog.exportFinished.connect(lambda _paths: mark_exported(self.session, dialog))
        dialog.exportFinished.connect(
            lambda paths: self.statusBar().showMessage(
                f"exported {len(paths)} file(s) to {Path(paths[0]).parent}", 8000
            )
        )
        dialog.open()
        return dialog

    # ------------------------------------------------------------------ prediction

    def _predictor_for(self, key: str):
        """A fast predictor for one object; called by the evaluate tab inside its worker thread."""
        return self.predictors.get(resolve_models({key: None}, "fast", self.models), "fast")

    def _on_predict_region_requested(self, objects: dict, mode: str) -> None:
        box = self.viewer.box_in_view()
        if self.session.volume is not None and box is None:
            self.show_error("None of the slice is in view: press Fit (Ctrl+0) and try again.")
            return
        self._on_predict_requested(objects, mode, None if box is None else (self.session.z, box))

    def _on_predict_requested(self, objects: dict, mode: str, region=None) -> None:
        """Predict ``objects`` on the whole stack, or with ``region = (slice, (y0, y1, x0, x1))``
        on that rectangle of one slice; first ask whether to keep the hand corrections it would replace."""
        if self.session.volume is None:
            self.show_error("Open a stack first (File > Open, or drop a file here).")
            return
        corrected = self.session.corrected_slices(objects)
        if region is not None:
            corrected = {key: [region[0]] for key, slices in corrected.items() if region[0] in slices}
        if not corrected:
            self._predict(objects, mode, keep=(), region=region)
            return
        # a Predict would silently undo the user's corrections (e.g. the slices they adapted a model with)
        box = CorrectionsDialog(self, corrected)
        keep = [(key, z) for key, slices in corrected.items() for z in slices]

        def answered(button) -> None:
            if button is box.keep_button:
                self._predict(objects, mode, keep, region)
            elif button is box.replace_button:
                self._predict(objects, mode, (), region)

        box.buttonClicked.connect(answered)
        box.open()
        self.corrections_box = box

    def _predict(self, objects: dict, mode: str, keep, region=None) -> None:
        """Start Predict of ``objects`` on the open stack (or ``region``, see
        :meth:`_on_predict_requested`), leaving the masks of ``keep`` ((object, slice) pairs) as they are."""
        volume, slices = self.session.volume, None
        if volume is None:  # closed while the question was open
            return
        self._region = None
        if region is not None:
            volume, index = region_volume(volume, *region)
            slices, self._region = [index], (region[0] - index, region[1])
        keep_long = self.panel.keep_long.isChecked()
        try:
            if self.online.is_online():
                url, token = self.online.server()
                work = online_work(url, token, list(objects), volume, mode, keep_long, slices)
                records = {key: run_record(mode, url) for key in objects}
            else:
                files = resolve_models({k: (str(v) if v else None) for k, v in objects.items()}, mode, self.models)
                work = offline_work(self.predictors, files, volume, mode, keep_long, slices)
                records = {key: run_record(mode, THIS_COMPUTER, paths) for key, paths in files.items()}
        except ReportedError as exc:  # the user's files, or the server (unreachable, refused)
            self.show_error(str(exc))
            return
        self._run = self.session.begin_run(keep)  # the results replace only the objects and slices it finishes
        self._records = records  # kept by the session as each object's first result arrives
        for key in objects:  # what is predicted is shown
            self.session.set_visible(key, True)
        self.predicting = True
        self.job = PredictionJob(work)
        self.job.signals.deviceFound.connect(self.device_label.setText)
        self.job.signals.warned.connect(self.panel.show_domain_warning)
        self.job.signals.warned.connect(lambda line: self.statusBar().showMessage(line, 30000))
        self.job.signals.progressed.connect(self.panel.show_progress)
        self.job.signals.itemFinished.connect(self._on_prediction_item)
        self.job.signals.finished.connect(self._on_prediction_finished)
        self.job.signals.failed.connect(self._on_prediction_failed)
        self.job.signals.cancelled.connect(self._on_prediction_cancelled)
        self.panel.set_running(True)
        start(self.job)

    def _on_prediction_item(self, item: SliceResult) -> None:
        box = None
        if self._region is not None:  # the result of a region: placed back in its slice
            shift, box = self._region
            item = SliceResult(item.index + shift, item.name, item.probabilities)
        if self.session.set_result(item, self._run, box):  # ignored when another stack was opened meanwhile
            for key in item.probabilities:  # the record of a run that did not reach an object stays as it was
                self.session.record_run([key], self._records[key])

    def _on_prediction_finished(self, _result) -> None:
        self.predicting = False
        self.panel.set_running(False)
        self.panel.eta.setText("done")
        self.predictionFinished.emit()

    def _on_prediction_failed(self, message: str) -> None:
        self.predicting = False
        self.panel.show_failed()
        self.show_error(message)
        self.predictionStopped.emit(message)

    def _on_prediction_cancelled(self) -> None:
        self.predicting = False
        self.panel.set_running(False)
        self.panel.eta.setText("cancelled; finished slices are kept")
        self.predictionStopped.emit("cancelled")

    def _on_cancel_requested(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _on_model_trained(self, path: str) -> None:
        """A model trained in the Train tab joins the model pickers at once."""
        self.models = config.installed_models()
        self.panel.set_models(self.models)
        self.statusBar().showMessage(f"trained {Path(path).name}; it is in the model picker", 8000)

    # ------------------------------------------------------------------ status and errors

    def _on_volume_changed(self) -> None:
        volume = self.session.volume
        if volume is None:  # nothing open: the labels keep their text
            return
        z, y, x = volume.shape
        self.size_label.setText(f"{x} x {y} px, {z} slice{'s' if z != 1 else ''}, {volume.dtype}")
        self.setWindowTitle(f"EMViewer - {Path(volume.source).name}")
        self._show_pixel_size()
        tissue = self.session.tissue
        if tissue is not None and tissue.nonfinite_fraction:
            self.statusBar().showMessage(
                f"{tissue.nonfinite_fraction:.1%} of the pixels are NaN or infinite: "
                "shown black, left out of the contrast, predicted as background"
            )

    def _show_pixel_size(self) -> None:
        volume = self.session.volume
        if volume is None:  # only a stack has a voxel size to show
            return
        self.voxel_label.setText(
            f"voxel {format_pixel_size(volume.pixel_size)}"
            if volume.pixel_size
            else "voxel size unknown (File > Voxel size)"
        )

    def _on_object_chosen(self, z: int, y: float, x: float) -> None:
        """A row of the Measure table: go to the object's slice and centre it."""
        self.session.set_slice(z)
        self.viewer.centre_on(x, y)

    def _on_cursor_moved(self, x: int, y: int, value: float) -> None:
        self.pixel_label.setText(f"x {x}, y {y}: {value:g}")

    def show_shortcuts(self) -> None:
        """Help > Keyboard shortcuts (the box is kept as ``help_box``)."""
        self.help_box = show_shortcuts(self)

    def _close_confirmed(self) -> None:
        self._may_close = True
        self.close()

    def show_error(self, message: str) -> None:
        """A modal dialog with the message (core errors name the file and the problem)."""
        self.last_error = message
        self.errorShown.emit(message)
        box = QMessageBox(QMessageBox.Icon.Warning, "EMViewer", message, QMessageBox.StandardButton.Ok, self)
        box.open()
        self._error_box = box

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if not self._may_close and not self.confirm_discard("closing EMViewer", self._close_confirmed):
            event.ignore()  # closed once the question is answered with Save or Discard
            return
        if self.job is not None:
            self.job.cancel()
        self.train_tab.stop()
        self.train_tab.adapt.cancel()
        remembered.save_window(self, self.settings)
        remembered.save_display(self.session, self.settings)
        super().closeEvent(event)
