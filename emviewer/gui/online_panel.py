"""Offline / online switch: where Predict runs (this computer, or a server with its URL and token).

The URL and the choice are kept in the app settings; the token in its own file that only the
user can read (``config.save_server_token``).
"""

from __future__ import annotations

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QButtonGroup, QFormLayout, QGroupBox, QLineEdit, QRadioButton, QVBoxLayout, QWidget

from .. import config

DEFAULT_URL = "http://127.0.0.1:8765"


class OnlinePanel(QGroupBox):
    """Two radio buttons and, for online mode, the server URL and token."""

    modeChanged = Signal(bool)  # True when switched to online

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__("Where to predict", parent)
        self.settings = settings
        self.offline_button = QRadioButton("Offline: on this computer")
        self.online_button = QRadioButton("Online: on a server")
        self.online_button.setToolTip(
            "For computers without a GPU: the stack is sent to an EMViewer server ('emviewer serve')"
        )
        group = QButtonGroup(self)
        group.addButton(self.offline_button)
        group.addButton(self.online_button)
        self.url = QLineEdit(str(settings.value("online/url", DEFAULT_URL)))
        self.url.setPlaceholderText(DEFAULT_URL)
        self.token = QLineEdit(config.load_server_token())
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("the server's token")
        form = QFormLayout()
        form.addRow("Server", self.url)
        form.addRow("Token", self.token)
        layout = QVBoxLayout(self)
        layout.addWidget(self.offline_button)
        layout.addWidget(self.online_button)
        layout.addLayout(form)
        online = str(settings.value("online/enabled", "false")).lower() == "true"
        (self.online_button if online else self.offline_button).setChecked(True)
        self._on_mode_changed()
        self.online_button.toggled.connect(self._on_mode_changed)

    def is_online(self) -> bool:
        return self.online_button.isChecked()

    def status_text(self) -> str:
        """Where Predict will run, for the status bar while no run has said more."""
        return f"online: {self.url.text().strip() or DEFAULT_URL}" if self.is_online() else ""

    def server(self) -> tuple[str, str]:
        """The URL and token as typed, saved for next time (the token owner-readable only)."""
        url, token = self.url.text().strip() or DEFAULT_URL, self.token.text().strip()
        self.settings.setValue("online/url", url)
        if token != config.load_server_token():
            config.save_server_token(token)
        return url, token

    def _on_mode_changed(self) -> None:
        online = self.is_online()
        self.url.setEnabled(online)
        self.token.setEnabled(online)
        self.settings.setValue("online/enabled", "true" if online else "false")
        self.modeChanged.emit(online)
