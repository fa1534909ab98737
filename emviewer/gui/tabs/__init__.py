"""The app's side-panel tabs: evaluate, measure and train (the segment panel is in predict_panel.py)."""

from .evaluate_tab import EvaluateTab
from .measure_tab import MeasureTab
from .train_tab import TrainTab

__all__ = ["EvaluateTab", "MeasureTab", "TrainTab"]
