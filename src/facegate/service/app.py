"""The application factory: ``create_app(settings)``.

Each worker process builds its own application: at start-up it opens the gallery
and loads the model once (:class:`~facegate.service.runner.GalleryRunner`), opens
its view of the API keys, and serves the routers, the web console at ``/`` and the
OpenAPI documentation at ``/docs`` (with its assets served locally: no CDN).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from facegate import __version__
from facegate.service import problems
from facegate.service.auth import KeyRing
from facegate.service.metrics import Metrics, MetricsMiddleware
from facegate.service.routers import decisions, events, keys, liveness, people, system
from facegate.service.runner import GalleryRunner
from facegate.service.settings import ServeSettings
from facegate.service.uploads import BodyLimit

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("facegate.service")

DESCRIPTION = """Face verification and recognition for an office door, on a CPU.

Send an API key as `X-API-Key: KEY` or `Authorization: Bearer KEY` (`facegate keys create`). Photos go in as
multipart files or as base64 in JSON. Answers use the library's result keys and say which operating point
(target FMR for door checks, target FPIR for identification) they met. Errors are
`{"error": ClassName, "detail": message}`.
"""


#: the console loads nothing but its own files, and no other site may frame it
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def create_app(settings: ServeSettings) -> FastAPI:
    runner = GalleryRunner(settings)

    def runner_path(location: str) -> str:  # a URL's password stays out of the log
        from facegate.gallery.store_postgres import is_postgres_url, redacted

        return redacted(location) if is_postgres_url(location) else location

    metrics = Metrics(settings.metrics_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runner.start()
        app.state.keyring = KeyRing(settings.gallery)
        metrics.flush(force=True)  # this worker counts in /metrics from now on
        log.info("facegate %s serves %s", __version__, runner_path(settings.gallery))
        try:
            yield
        finally:
            app.state.keyring.close()
            runner.close()
            metrics.flush(force=True)

    app = FastAPIOffline(
        title="facegate",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
        static_url="/docs-static",
        openapi_tags=[
            {"name": "decisions", "description": "Door checks, identification, comparison (door or admin keys)"},
            {"name": "people", "description": "Enrolment and changes (admin keys)"},
            {"name": "audit log", "description": "Every decision and change (admin keys)"},
            {"name": "keys", "description": "API keys (admin keys)"},
            {"name": "system", "description": "Health and metrics"},
        ],
    )
    app.state.settings = settings
    app.state.runner = runner
    app.state.metrics = metrics
    problems.install(app)
    for module in (decisions, liveness, people, events, keys, system):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(
            STATIC / "index.html", headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP}
        )

    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: 413s are counted too
    return app


def app_from_env() -> FastAPI:
    """The application of a worker process started by ``facegate serve`` (settings in the environment)."""
    return create_app(ServeSettings.from_env())
