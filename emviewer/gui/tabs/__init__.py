"""The app's tabs: evaluate (and, as they are built, predict and train)."""

from .evaluate_tab import EvaluateTab

__all__ = ["EvaluateTab"]
