"""EMViewer: deep-learning segmentation of organelles in electron-microscopy stacks."""

__version__ = "0.1.0"
