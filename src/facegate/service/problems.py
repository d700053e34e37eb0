"""Errors as HTTP answers: ``{"error": ClassName, "detail": message}`` with the right status.

facegate's typed errors map to 4xx (a bad photo, no face, an unknown or duplicate
person, a lock); a bad request never becomes a 500, and never changes the gallery
(every gallery write is all or nothing). An error nobody foresaw is a 500 with a
generic message, logged with its traceback: never a "no".
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from facegate.errors import (
    ApiKeyNotFoundError,
    DuplicatePersonError,
    DuplicateTemplateError,
    FacegateError,
    GalleryUnavailableError,
    LockedOutError,
    ModelMismatchError,
    ModelUnavailableError,
    PersonNotFoundError,
    PoorQualityError,
    UploadTooLargeError,
)

log = logging.getLogger("facegate.service")

#: the most specific class first; every other FacegateError (bad image, pixel limit, no face, bad name) is 422
STATUS: list[tuple[type[FacegateError], int]] = [
    (UploadTooLargeError, 413),
    (LockedOutError, 423),
    (PersonNotFoundError, 404),
    (ApiKeyNotFoundError, 404),
    (DuplicatePersonError, 409),
    (DuplicateTemplateError, 409),
    (ModelMismatchError, 409),
    (GalleryUnavailableError, 503),
    (ModelUnavailableError, 503),
]


class ServiceError(Exception):
    """An HTTP error the service raises itself (authentication, a malformed request)."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


def status_of(exc: FacegateError) -> int:
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 422)


def problem(status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status, headers=headers)


async def facegate_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FacegateError)
    extra: dict[str, Any] = {}
    if isinstance(exc, LockedOutError):
        # the door's answer: not verified, and why (a client tells a lock from a "no" by the status and "locked")
        extra = {"verified": False, "locked": True, "locked_until": exc.until, "identity": exc.name}
    elif isinstance(exc, PoorQualityError):
        extra = {"quality": exc.quality}
    return problem(status_of(exc), type(exc).__name__, str(exc), **extra)


async def service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return problem(exc.status, exc.error, exc.detail, exc.headers)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    names = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 413: "UploadTooLargeError"}
    return problem(exc.status_code, names.get(exc.status_code, "HTTPError"), str(exc.detail), exc.headers)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
    return problem(422, "ValidationError", "; ".join(parts) or "invalid request")


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "InternalError", "an unexpected error; it was logged (this is a bug, not a decision)")


def install(app: FastAPI) -> None:
    app.add_exception_handler(FacegateError, facegate_error)
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)
