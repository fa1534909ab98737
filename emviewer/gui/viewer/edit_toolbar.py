"""The Edit toolbar: tools, the object edited, the brush size, undo and redo, with napari's keys."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QSpinBox, QStyle, QToolBar, QToolButton, QWidget

from ...core.objects import OBJECTS
from .mask_editor import MAX_BRUSH, MIN_BRUSH, MaskEditor

#: Tool -> (button text, key), the keys napari users know.
TOOL_KEYS = {"navigate": ("Navigate", "Z"), "paint": ("Paint", "P"), "erase": ("Erase", "E"), "fill": ("Fill", "F")}


class EditToolbar(QToolBar):
    """Checkable Navigate / Paint / Erase / Fill buttons, the object picker, the brush diameter
    (pixels) and Undo / Redo, all kept in step with a :class:`MaskEditor`.

    The keys are the actions' shortcuts (window-wide; a focused text field still receives typed
    letters, as Qt offers it the key first): Z, P, E, F pick a tool, ``[`` and ``]`` make the brush
    smaller or larger, Ctrl+Z undoes and Ctrl+Shift+Z redoes.

    Parameters
    ----------
    editor
        The mask editor this toolbar drives and mirrors.
    parent
        Optional parent widget.

    Attributes
    ----------
    tool_actions : dict[str, QAction]
        Tool name -> its checkable action (an exclusive group).
    object_box : QComboBox
        Object labels; the item data is the object's key.
    size_box : QSpinBox
        Brush diameter in pixels.
    smaller_action, larger_action, undo_action, redo_action : QAction
    """

    def __init__(self, editor: MaskEditor, parent: QWidget | None = None) -> None:
        super().__init__("Edit", parent)
        self.setObjectName("edit_toolbar")
        self.editor = editor
        group = QActionGroup(self)
        group.setExclusive(True)
        self.tool_actions: dict[str, QAction] = {}
        for tool, (text, key) in TOOL_KEYS.items():
            action = QAction(text, self)
            action.setCheckable(True)
            action.setShortcut(QKeySequence(key))
            action.setToolTip(f"{text} ({key})")
            action.triggered.connect(lambda _checked=False, tool=tool: editor.set_tool(tool))
            group.addAction(action)
            self.addAction(action)
            self.tool_actions[tool] = action
        self.addSeparator()
        self.object_box = QComboBox()
        for key, kind in OBJECTS.items():
            self.object_box.addItem(kind.label, key)
        self.object_box.setToolTip("Object painted, erased or filled")
        self.object_box.currentIndexChanged.connect(lambda i: editor.set_object(self.object_box.itemData(i)))
        self.addWidget(self.object_box)
        self.addWidget(QLabel(" Brush "))
        self.size_box = QSpinBox()
        self.size_box.setRange(MIN_BRUSH, MAX_BRUSH)
        self.size_box.setSuffix(" px")
        self.size_box.setToolTip("Brush diameter in image pixels ([ smaller, ] larger)")
        self.size_box.valueChanged.connect(editor.set_brush_size)
        self.addWidget(self.size_box)
        self.smaller_action = self._key_action("Smaller brush", "[", lambda: editor.grow_brush(-1))
        self.larger_action = self._key_action("Larger brush", "]", lambda: editor.grow_brush(+1))
        self.addSeparator()
        self.undo_action = editor.undo_stack.createUndoAction(self, "Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = editor.undo_stack.createRedoAction(self, "Redo")
        self.redo_action.setShortcuts(_redo_keys())
        # Icon-only buttons: the actions' text names the step ("Undo paint mitochondria on slice 2",
        # in the Edit menu and the tooltip) and would change the toolbar's width with every stroke.
        for action, theme, icon in (
            (self.undo_action, "edit-undo", QStyle.StandardPixmap.SP_ArrowBack),
            (self.redo_action, "edit-redo", QStyle.StandardPixmap.SP_ArrowForward),
        ):
            action.setIcon(QIcon.fromTheme(theme, self.style().standardIcon(icon)))
            self.addAction(action)
            button = self.widgetForAction(action)
            if isinstance(button, QToolButton):
                button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)

        editor.toolChanged.connect(self._show_tool)
        editor.objectChanged.connect(self._show_object)
        editor.brushSizeChanged.connect(self._show_size)
        self._show_tool(editor.tool)
        self._show_object(editor.object)
        self._show_size(editor.brush_size)

    def _key_action(self, text: str, key: str, slot) -> QAction:
        """A window-wide shortcut without a button of its own."""
        action = QAction(text, self)
        action.setShortcut(QKeySequence(key))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(slot)
        self.size_box.addAction(action)  # a shortcut needs a visible widget; no button: the spin box shows the size
        return action

    def _show_tool(self, tool: str) -> None:
        self.tool_actions[tool].setChecked(True)

    def _show_object(self, key: str) -> None:
        with QSignalBlocker(self.object_box):
            self.object_box.setCurrentIndex(self.object_box.findData(key))

    def _show_size(self, size: int) -> None:
        with QSignalBlocker(self.size_box):
            self.size_box.setValue(size)


def _redo_keys() -> list[QKeySequence]:
    """Ctrl+Shift+Z everywhere, plus the platform's own redo key (Ctrl+Y on Windows)."""
    keys = [QKeySequence("Ctrl+Shift+Z")]
    keys += [key for key in QKeySequence.keyBindings(QKeySequence.StandardKey.Redo) if key not in keys]
    return keys
