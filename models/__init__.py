"""The bundled models, installed as the package data ``emviewer.bundled_models`` (see pyproject.toml)."""
