"""Running the app with uvicorn (``emviewer serve``)."""

from __future__ import annotations

from .settings import ServerSettings


def serve(settings: ServerSettings) -> None:
    """Serve until interrupted; refuses a non-loopback address without a token."""
    import uvicorn

    from .app import create_app

    settings.check()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=5)
