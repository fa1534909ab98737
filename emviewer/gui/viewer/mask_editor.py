"""Hand correction of masks: paint, erase and fill the selected object on either pane, with undo.

A stroke (press, drag, release) edits a working copy of the slice's mask and redraws only the
stroke's bounding box in the overlay pane; on release the changed box is pushed to a
:class:`~PySide6.QtGui.QUndoStack` as one command, whose first ``redo`` stores the mask with
:meth:`Session.replace_mask`. An undo step is never applied over a newer result: a command whose
slice was predicted again, or whose box no longer holds the state it expects, is dropped instead.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QMouseEvent, QPen, QUndoCommand, QUndoStack
from PySide6.QtWidgets import QGraphicsEllipseItem

from ...core.objects import OBJECTS
from ...core.overlay import render_overlay, to_uint8
from ..session import Session
from .brush import Box, background_region, capsule, union
from .panes import SideBySideView

#: The tools, in toolbar order.
TOOLS = ("navigate", "paint", "erase", "fill")
#: Brush diameters in image pixels.
MIN_BRUSH, MAX_BRUSH, DEFAULT_BRUSH = 1, 500, 15

# A quick second click arrives as a double click: it paints like a press.
_MOUSE_EVENTS = (
    QEvent.Type.MouseButtonPress,
    QEvent.Type.MouseButtonDblClick,
    QEvent.Type.MouseMove,
    QEvent.Type.MouseButtonRelease,
)


class EditCommand(QUndoCommand):
    """One stroke or fill: the changed box of one object's slice, before and after."""

    def __init__(self, editor: MaskEditor, key: str, z: int, box: Box, before: np.ndarray, after: np.ndarray) -> None:
        label = OBJECTS[key].label if key in OBJECTS else key
        super().__init__(f"{editor.tool} {label} on slice {z + 1}")
        self.editor, self.key, self.z, self.box = editor, key, z, box
        self.before, self.after = before, after
        self.stale = False  # the slice was predicted again since this edit

    def redo(self) -> None:
        self.editor._apply(self, expect=self.before, patch=self.after)

    def undo(self) -> None:
        self.editor._apply(self, expect=self.after, patch=self.before)


class MaskEditor(QObject):
    """Tool state, mouse handling on both panes of a :class:`SideBySideView`, and the undo stack.

    Parameters
    ----------
    session
        The app state; edits go through :meth:`Session.replace_mask`.
    view
        The panes; a left-button press on either one paints, erases or fills with the current tool
        (in ``"navigate"`` the panes pan as usual; the wheel and right button zoom with every tool).
    parent
        Optional parent object.

    Attributes
    ----------
    undo_stack : QUndoStack
        One command per stroke or fill; cleared when another stack opens.
    """

    toolChanged = Signal(str)
    objectChanged = Signal(str)
    brushSizeChanged = Signal(int)
    message = Signal(str)  # something the user should read (a dropped undo step)

    def __init__(self, session: Session, view: SideBySideView, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.view = session, view
        self.tool = "navigate"
        self.object = next(iter(OBJECTS))
        self.brush_size = DEFAULT_BRUSH
        self.undo_stack = QUndoStack(self)
        self._stroke: dict | None = None  # the stroke in progress
        self._committing = False  # masksChanged comes from our own replace_mask
        self._mine: dict[tuple[str, int], np.ndarray | None] = {}  # (object, z) -> the mask our last edit stored
        self._outlines = [self._add_outline(pane) for pane in (view.raw_view, view.overlay_view)]
        view.graphics.viewport().installEventFilter(self)
        session.volumeChanged.connect(self._on_volume_changed)
        session.sliceChanged.connect(self._on_slice_changed)
        session.masksChanged.connect(self._on_masks_changed)
        session.displayChanged.connect(self._on_display_changed)

    # ------------------------------------------------------------------ state

    def set_tool(self, tool: str) -> None:
        """One of :data:`TOOLS`; raises ValueError for any other name."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; choose from {', '.join(TOOLS)}")
        if tool != self.tool:
            self.end_stroke()
            self.tool = tool
            cursor = Qt.CursorShape.ArrowCursor if tool == "navigate" else Qt.CursorShape.CrossCursor
            self.view.graphics.viewport().setCursor(cursor)
            for outline in self._outlines:
                outline.setVisible(False)
            self.toolChanged.emit(tool)

    def set_object(self, key: str) -> None:
        """The object edited: a key of :data:`~emviewer.core.objects.OBJECTS`."""
        if key not in OBJECTS:
            raise ValueError(f"unknown object {key!r}; choose from {', '.join(OBJECTS)}")
        if key != self.object:
            self.end_stroke()
            self.object = key
            self.objectChanged.emit(key)

    def set_brush_size(self, size: int) -> None:
        """Brush diameter in image pixels, clipped to [:data:`MIN_BRUSH`, :data:`MAX_BRUSH`]."""
        size = int(np.clip(size, MIN_BRUSH, MAX_BRUSH))
        if size != self.brush_size:
            self.brush_size = size
            self.brushSizeChanged.emit(size)

    def grow_brush(self, steps: int) -> None:
        """Larger (``steps`` > 0) or smaller brush, by about 20 % a step and at least 1 pixel."""
        size = self.brush_size
        for _ in range(abs(steps)):
            change = max(1, round(size * 0.2))
            size = size + change if steps > 0 else size - change
        self.set_brush_size(size)

    # ------------------------------------------------------------------ strokes (image pixel coordinates)

    def begin_stroke(self, x: int, y: int) -> None:
        """Start painting or erasing at pixel ``(x, y)`` of the current slice (may lie outside it)."""
        session = self.session
        if session.volume is None or self.tool not in ("paint", "erase"):
            return
        self.end_stroke()
        key, z = self.object, session.z
        if not session.visible.get(key, True):
            session.set_visible(key, True)  # what is painted must be seen
        base = session.masks.get(key, {}).get(z)  # the mask painted on; a prediction may replace it meanwhile
        work = session.mask_or_empty(key, z)
        self._stroke = {"key": key, "z": z, "base": base, "work": work, "box": None, "last": (x, y)}
        self._prepare_canvas(reuse=True)
        self._paint_segment((x, y), (x, y))

    def continue_stroke(self, x: int, y: int) -> None:
        """Extend the stroke in progress to pixel ``(x, y)``."""
        if self._stroke is not None:
            self._paint_segment(self._stroke["last"], (x, y))
            self._stroke["last"] = (x, y)

    def end_stroke(self) -> None:
        """Finish the stroke in progress: one undo step, stored in the session."""
        stroke, self._stroke = self._stroke, None
        if stroke is None or stroke["box"] is None:
            return
        self._push(stroke["key"], stroke["z"], stroke["box"], stroke["work"])

    def cancel_stroke(self) -> None:
        """Drop the stroke in progress and show the session's masks again."""
        if self._stroke is not None:
            self._stroke = None
            self.view.redraw_overlay()

    def fill_at(self, x: int, y: int) -> bool:
        """Fill the background region under pixel ``(x, y)`` of the current slice with the selected
        object (4-connected, this slice only); one undo step. Returns whether anything changed."""
        session = self.session
        if session.volume is None or not (0 <= y < session.volume.shape[1] and 0 <= x < session.volume.shape[2]):
            return False
        key, z = self.object, session.z
        mask = session.mask_or_empty(key, z)
        region = background_region(mask, x, y)
        if region is None:
            return False
        rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
        box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        mask |= region
        if not session.visible.get(key, True):
            session.set_visible(key, True)
        self._push(key, z, box, mask)
        return True

    # ------------------------------------------------------------------ storing and undo

    def _push(self, key: str, z: int, box: Box, edited: np.ndarray) -> None:
        y0, y1, x0, x1 = box
        stored = self.session.masks.get(key, {}).get(z)
        before = np.zeros((y1 - y0, x1 - x0), bool) if stored is None else stored[y0:y1, x0:x1]
        changed = before != edited[y0:y1, x0:x1]
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        if not rows.size:
            self.view.redraw_overlay()  # nothing changed (erasing nothing): show the session's masks
            return
        box = (y0 + int(rows[0]), y0 + int(rows[-1]) + 1, x0 + int(cols[0]), x0 + int(cols[-1]) + 1)
        inner = (slice(box[0] - y0, box[1] - y0), slice(box[2] - x0, box[3] - x0))
        before, after = before[inner].copy(), edited[box[0] : box[1], box[2] : box[3]].copy()
        self.undo_stack.push(EditCommand(self, key, z, box, before, after))

    def _apply(self, command: EditCommand, expect: np.ndarray, patch: np.ndarray) -> None:
        """Put ``patch`` into the command's box if the box still holds ``expect``; else drop the step."""
        session, key, z = self.session, command.key, command.z
        y0, y1, x0, x1 = command.box
        if session.volume is None:
            command.setObsolete(True)
            return
        mask = session.mask_or_empty(key, z)
        if command.stale or not np.array_equal(mask[y0:y1, x0:x1], expect):
            command.setObsolete(True)  # QUndoStack deletes it: never paste an old patch over a new result
            self.message.emit(f"Slice {z + 1} of {key} changed since that edit; its undo step was dropped.")
            return
        mask[y0:y1, x0:x1] = patch
        self._committing = True
        self.view.changed_box = command.box if z == session.z else None  # the panes redraw only the box
        try:
            session.replace_mask(key, z, mask)
        finally:
            self._committing = False
            self.view.changed_box = None
        self._mine[(key, z)] = session.masks.get(key, {}).get(z)  # none: undone back to no mask

    def _on_masks_changed(self, z: int) -> None:
        """A prediction (or clearing) replaced masks: steps on those slices may no longer apply."""
        if self._committing:
            return
        for i in range(self.undo_stack.count()):
            command = self.undo_stack.command(i)
            if isinstance(command, EditCommand) and z in (-1, command.z) and self._replaced(command.key, command.z):
                command.stale = True
        if self._stroke is not None and z in (-1, self._stroke["z"]):
            stroke = self._stroke
            if self.session.masks.get(stroke["key"], {}).get(stroke["z"]) is not stroke["base"]:
                self._stroke = None  # painted over a mask that is gone: the stroke is dropped
                self.message.emit(f"Slice {stroke['z'] + 1} of {stroke['key']} changed while painting.")
            else:
                self._prepare_canvas(reuse=False)  # another object changed: the panes redrew without the stroke

    def _replaced(self, key: str, z: int) -> bool:
        """Whether the mask of ``key`` on slice ``z`` is no longer the one the editor last stored."""
        return self.session.masks.get(key, {}).get(z) is not self._mine.get((key, z))

    def _on_volume_changed(self) -> None:
        self._stroke = None
        self._mine.clear()
        self.undo_stack.clear()

    def _on_slice_changed(self, _z: int) -> None:
        self.end_stroke()  # a stroke belongs to one slice

    def _on_display_changed(self) -> None:
        if self._stroke is not None:
            self._prepare_canvas(reuse=False)  # the panes redrew without the stroke

    # ------------------------------------------------------------------ drawing the stroke in progress

    def _shown_keys(self, key: str, z: int) -> list[str]:
        """Objects drawn on slice ``z`` while ``key`` is being edited, in the order the panes draw them."""
        masks, visible = self.session.masks, self.session.visible
        keys = [k for k, per_slice in masks.items() if visible.get(k, True) and (z in per_slice or k == key)]
        return keys if key in masks else [*keys, key]

    def _render(self, box: Box) -> np.ndarray:
        """The overlay of ``box`` with the stroke's working mask, as ``(h, w, 3)`` uint8 RGB."""
        session, stroke = self.session, self._stroke
        assert stroke is not None
        y0, y1, x0, x1 = box
        key, z = stroke["key"], stroke["z"]
        masks = {
            k: (stroke["work"] if k == key else session.masks[k][z])[y0:y1, x0:x1] for k in self._shown_keys(key, z)
        }
        grey = to_uint8(self.view.raw_pixels(box), *session.levels)
        return render_overlay(grey, masks, session.opacity, session.colours)

    def _prepare_canvas(self, reuse: bool) -> None:
        """Give the overlay pane an RGB image of full-resolution pixels that the stroke can
        update in place (none on a large slice zoomed out: the stroke then shows once released)."""
        stroke = self._stroke
        assert stroke is not None
        stroke["canvas"] = canvas = self.view.edit_canvas()
        if canvas is None:
            return
        item, (y0, y1, x0, x1) = canvas
        shown = item.image
        if reuse and shown is not None and shown.ndim == 3 and shown.shape[:2] == (y1 - y0, x1 - x0):
            image = shown  # the panes' overlay, drawn from the same masks: only the stroke's box changes
        else:
            image = self._render((y0, y1, x0, x1))
        item.setImage(image, autoLevels=False, levels=None)  # RGB without levels: Qt shows the buffer as is

    def _paint_segment(self, start: tuple[int, int], end: tuple[int, int]) -> None:
        stroke = self._stroke
        assert stroke is not None
        work = stroke["work"]
        hit = capsule(work.shape, start, end, self.brush_size)
        if hit is None:
            return
        box, inside = hit
        y0, y1, x0, x1 = box
        if self.tool == "paint":
            work[y0:y1, x0:x1] |= inside
        else:
            work[y0:y1, x0:x1] &= ~inside
        stroke["box"] = union(stroke["box"], box)
        if stroke.get("canvas") is not None:
            item, (cy0, cy1, cx0, cx1) = stroke["canvas"]
            y0, y1, x0, x1 = max(y0, cy0), min(y1, cy1), max(x0, cx0), min(x1, cx1)
            if y0 < y1 and x0 < x1:
                item.image[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0] = self._render((y0, y1, x0, x1))
                item.updateImage()  # only marks the item for a repaint; Qt wraps the same buffer

    # ------------------------------------------------------------------ mouse

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        kind = event.type()
        if kind not in _MOUSE_EVENTS:
            return False
        assert isinstance(event, QMouseEvent)
        pixel = self._pixel_at(event)
        if kind == QEvent.Type.MouseMove:
            self._move_outline(pixel)
            if self._stroke is not None and pixel is not None:
                self.continue_stroke(*pixel)
            return False  # the scene still sees the move: the cursor readout follows the brush
        if self.tool == "navigate" or event.button() != Qt.MouseButton.LeftButton:
            return False
        if kind == QEvent.Type.MouseButtonRelease:
            self.end_stroke()
            return True
        if pixel is None:  # pressed outside both panes
            return False
        if self.tool == "fill":
            self.fill_at(*pixel)
        else:
            self.begin_stroke(*pixel)
        return True  # the ViewBox never sees the press, so it does not pan

    def _pixel_at(self, event: QMouseEvent) -> tuple[int, int] | None:
        """Image pixel ``(x, y)`` under the mouse on either pane (may lie outside the image), or None."""
        scene_pos = self.view.graphics.mapToScene(event.position().toPoint())
        for pane in (self.view.overlay_view, self.view.raw_view):
            if pane.sceneBoundingRect().contains(scene_pos):
                point = pane.mapSceneToView(scene_pos)
                return int(np.floor(point.x())), int(np.floor(point.y()))
        return None

    def _add_outline(self, pane) -> QGraphicsEllipseItem:
        outline = QGraphicsEllipseItem()
        pen = QPen(Qt.GlobalColor.white)
        pen.setCosmetic(True)  # one screen pixel wide at any zoom
        outline.setPen(pen)
        outline.setVisible(False)
        pane.addItem(outline, ignoreBounds=True)
        return outline

    def _move_outline(self, pixel: tuple[int, int] | None) -> None:
        """The brush's circle around the pixel under the mouse, on both panes."""
        show = pixel is not None and self.tool in ("paint", "erase")
        for outline in self._outlines:
            outline.setVisible(show)
            if show:
                assert pixel is not None
                radius = self.brush_size / 2
                centre = QPointF(pixel[0] + 0.5, pixel[1] + 0.5)
                outline.setRect(QRectF(centre.x() - radius, centre.y() - radius, 2 * radius, 2 * radius))
