"""Running the app with uvicorn (``emviewer serve``)."""

from __future__ import annotations

import logging

from .settings import ServerSettings


def serve(settings: ServerSettings) -> None:
    """Serve until interrupted; refuses a non-loopback address without a token."""
    import uvicorn

    from .app import create_app

    settings.check()
    # the server's own messages (work folder, removed left-overs, failed jobs with their
    # traceback) beside uvicorn's
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    logging.getLogger("emviewer").setLevel(logging.INFO)
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=5
    )
