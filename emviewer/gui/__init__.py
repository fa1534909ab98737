"""The desktop app (PySide6 + pyqtgraph): thin widgets over the core library."""
