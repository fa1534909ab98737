"""The sample stack and the app's icon, installed as the package data ``emviewer.resources`` (see pyproject.toml)."""
