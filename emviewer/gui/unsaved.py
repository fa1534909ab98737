"""Asking before results are discarded: the Save / Discard / Cancel question and what Save uses,
and the question before a Predict would replace masks corrected by hand.

Opening another stack, closing the window or quitting with unsaved results (or while a Predict
runs) asks first; so does a Predict of an object with corrected slices. The questions are
window-modal message boxes that do not block (``open()``, not ``exec()``), so the caller goes on
when one is answered; Save opens the export dialog set to an HDF5 file of every mask and
probability.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QWidget

from ..core.objects import OBJECTS
from ..core.report_summary import slice_ranges
from .export_dialog import ExportDialog
from .session import Session

Answer = QMessageBox.StandardButton


def ask_before_discarding(parent: QWidget, action: str, objects: Iterable[str], running: bool) -> QMessageBox:
    """Open the question and return its box (answer it with ``box.button(Answer.Cancel).click()``).

    Parameters
    ----------
    action
        What would discard the results, e.g. ``"opening another stack"``.
    objects
        Keys of the objects with unsaved results; none: only Discard (stop the Predict) or Cancel.
    running
        Whether a Predict is running (Save and Discard stop it first).
    """
    labels = [OBJECTS[key].label if key in OBJECTS else key for key in sorted(objects)]
    lines = ["A Predict is running; it will be stopped."] if running else []
    if labels:
        lines.append(f"The results for {', '.join(labels)} are not saved. Save them before {action}?")
        buttons = Answer.Save | Answer.Discard | Answer.Cancel
    else:
        lines.append(f"Stop it and go on {action}?")
        buttons = Answer.Discard | Answer.Cancel
    box = QMessageBox(QMessageBox.Icon.Warning, "EMViewer", "\n\n".join(lines), buttons, parent)
    box.setDefaultButton(Answer.Save if labels else Answer.Cancel)
    box.setEscapeButton(Answer.Cancel)
    box.open()
    return box


class CorrectionsDialog(QMessageBox):
    """Asks whether a Predict keeps the masks corrected by hand (the default) or replaces them.

    ``corrected``: object key -> its corrected slices (0-based). Buttons: :attr:`keep_button`,
    :attr:`replace_button` and Cancel (``Answer.Cancel``). Shown with ``open()``.
    """

    def __init__(self, parent: QWidget, corrected: dict[str, list[int]]) -> None:
        parts = [
            f"{OBJECTS[key].label if key in OBJECTS else key} on slice{'s' if len(z) > 1 else ''} {slices_text(z)}"
            for key, z in corrected.items()
        ]
        text = (
            f"You corrected masks by hand: {'; '.join(parts)}.\n\n"
            "Keep your corrections on those slices (the other slices are predicted),"
            " or replace them with the new prediction?"
        )
        super().__init__(QMessageBox.Icon.Question, "EMViewer", text, Answer.Cancel, parent)
        self.keep_button = self.addButton("Keep my corrections", QMessageBox.ButtonRole.AcceptRole)
        self.replace_button = self.addButton("Replace them", QMessageBox.ButtonRole.DestructiveRole)
        self.setDefaultButton(self.keep_button)
        self.setEscapeButton(Answer.Cancel)


def slices_text(slices: Iterable[int]) -> str:
    """0-based slices as the export dialog's range text, numbered from 1 as the slider counts:
    ``[0, 1, 2, 5]`` -> ``"1-3, 6"``."""
    return slice_ranges(slices, base=1)


def prepare_save(dialog: ExportDialog, session: Session) -> None:
    """Set ``dialog`` to save every mask and probability of the predicted slices to HDF5 beside the stack."""
    assert session.volume is not None, "there are results to save only while a stack is open"
    source = Path(str(session.volume.source))
    folder = source.parent if source.exists() else Path.home()
    dialog.path_edit.setText(str(folder / f"{source.stem or 'emviewer'}_results.h5"))
    dialog.format_box.setCurrentIndex(dialog.format_box.findData("hdf5"))
    dialog.content_buttons["all"].setChecked(True)
    predicted = {z for planes in session.masks.values() for z in planes}
    if len(predicted) == len(session.volume):
        dialog.slice_buttons["all"].setChecked(True)
    else:
        dialog.slice_buttons["range"].setChecked(True)
        dialog.range_edit.setText(slices_text(predicted))


def mark_exported(session: Session, dialog: ExportDialog) -> None:
    """After ``dialog`` exported: the objects it wrote (all, or the one mask) are saved on its slices."""
    content = dialog.chosen_content()
    if content == "all":
        objects = list(session.masks)
    elif content == "mask":
        objects = [dialog.object_box.currentData()]
    else:
        return  # raw, overlay or report: the results themselves are not saved
    session.mark_saved(objects, dialog.chosen_slices())
