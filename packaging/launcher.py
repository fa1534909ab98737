"""Entry point of the frozen app (PyInstaller runs a script, not ``python -m emviewer``)."""

from emviewer.cli import main

raise SystemExit(main())
