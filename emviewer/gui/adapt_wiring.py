"""How the main window joins adaptation (Train tab) to the Segment panel's model pickers."""

from __future__ import annotations

from pathlib import Path

from .. import config


def wire_adaptation(window) -> None:
    """Connect the Train tab's adapt panel and the Segment panel's Adapt... buttons of ``window``
    (a :class:`~.main_window.MainWindow`): a new or deleted model updates the pickers, Adapt...
    opens the panel on that object's model and corrected slices, Use this model selects it."""
    adapt, panel = window.train_tab.adapt, window.panel

    def refresh_models(message: str) -> None:
        window.models = config.installed_models()
        panel.set_models(window.models)
        window.statusBar().showMessage(message, 8000)

    def on_adapt_requested(key: str) -> None:
        window.tabs.setCurrentWidget(window.train_tab)
        adapt.set_source(key, panel.rows[key].chosen_model())
        adapt.slices.use_folders(False)

    def on_use_model(key: str, path: str) -> None:
        refresh_models(f"using {Path(path).stem} for {key}")
        row = panel.rows[key]
        row.model.setCurrentIndex(max(0, row.model.findData(path)))
        row.check.setChecked(True)
        window.tabs.setCurrentWidget(panel)

    adapt.modelAdapted.connect(lambda path: refresh_models(f"adapted {Path(path).name}; it is in the model picker"))
    adapt.modelDeleted.connect(lambda path: refresh_models(f"deleted {Path(path).name}"))
    adapt.useModelRequested.connect(on_use_model)
    panel.adaptRequested.connect(on_adapt_requested)
