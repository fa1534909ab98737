"""The FastAPI app factory: lifespan (models, job queue, work folder), error handlers, routes."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from .. import __version__, config
from ..core.models.registry import list_models
from ..remote.schemas import API_PREFIX, first_problem
from .jobs import JobManager
from .models import ModelStore
from .routes import router
from .runner import run_job
from .settings import ServerSettings
from .workdir import WorkFolder

log = logging.getLogger("emviewer.server")


def _installed_models(settings: ServerSettings):
    bundled = settings.models_dir or config.bundled_models_dir()
    user = settings.user_models_dir or config.user_models_dir()
    return list_models(Path(bundled), Path(user))


@asynccontextmanager
async def _lifespan(app: FastAPI):
    from ..core.backend import device_summary

    settings: ServerSettings = app.state.settings
    work_folder = WorkFolder.open(settings.work_dir)
    jobs = None
    try:
        store = ModelStore(_installed_models(settings))
        summary = device_summary()
        app.state.work_dir, app.state.store = work_folder.path, store
        app.state.device = {"backend": summary["backend"], "device": ", ".join(summary["devices"])}
        app.state.jobs = jobs = JobManager(run_job, settings.workers, settings.max_waiting, settings.result_ttl)
        log.info(
            "serving %d model(s) on %s; work folder %s",
            len(store.entries),
            app.state.device["device"],
            work_folder.path,
        )
        yield
    finally:
        if jobs is not None:
            jobs.close()
        work_folder.close()


def _error(status: int, detail: str, headers=None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path, for the ``Allow`` header of a 405."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _add_error_handlers(app: FastAPI) -> None:
    """Every error answers ``{"detail": "<one message>"}``; no tracebacks or internals leave."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # Starlette names only the first matching route's methods
            headers["Allow"] = _allowed_methods(request)
        return _error(exc.status_code, str(exc.detail), headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, first_problem(exc.errors()))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal server error")


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """A new app; models load and workers start when it starts (not here)."""
    settings = settings or ServerSettings()
    app = FastAPI(
        title="EMViewer prediction server",
        version=__version__,
        description="Segments organelles in EM stacks with the server's models (online mode of EMViewer).",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    _add_error_handlers(app)
    app.include_router(router, prefix=API_PREFIX)
    return app
