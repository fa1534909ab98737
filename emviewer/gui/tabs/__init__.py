"""The app's side-panel tabs: evaluate and train (the segment panel is in predict_panel.py)."""

from .evaluate_tab import EvaluateTab
from .train_tab import TrainTab

__all__ = ["EvaluateTab", "TrainTab"]
