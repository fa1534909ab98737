"""Core library: all the work, no Qt, no web framework, no ML backend at import time."""
