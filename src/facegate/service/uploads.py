"""Photos in: multipart uploads or base64 JSON, and the upload size limit.

A request carries photos as files of a ``multipart/form-data`` body (any field
names, in order), or as a JSON body whose ``photo`` (one), ``photos`` (a list),
``img1`` and ``img2`` hold base64 or ``data:`` URIs; other fields (``name``,
``top_k``) come beside them. Base64 is decoded here, never read as a file path.
A body over the limit is a 413 before any of it is decoded.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facegate.errors import InvalidImageError, UploadTooLargeError
from facegate.service.problems import ServiceError, problem

#: files one request may carry (a person's enrolment photos, a burst of frames)
MAX_FILES = 50
#: JSON keys that hold photos, in the order they are read
PHOTO_KEYS = ("img1", "img2", "photo", "photos")
_DATA_URI = re.compile(r"^data:[\w/.+-]*(;[\w=.+-]+)*;base64,", re.IGNORECASE)


@dataclass
class Upload:
    """A request's photos (encoded bytes, in order) and its other fields."""

    photos: list[bytes] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)

    def text(self, key: str) -> str:
        value = self.fields.get(key)
        if not isinstance(value, str) or not value:
            raise ServiceError(422, "ValidationError", f"{key}: a non-empty string is required")
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.fields.get(key, default)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ServiceError(422, "ValidationError", f"{key}: an integer is required") from None
        if not low <= number <= high:
            raise ServiceError(422, "ValidationError", f"{key}: must be between {low} and {high}")
        return number

    def need(self, low: int, high: int, what: str) -> list[bytes]:
        if not low <= len(self.photos) <= high:
            count = f"{low}" if low == high else f"{low} to {high}"
            raise ServiceError(422, "ValidationError", f"{what}: {count} photo(s) expected, {len(self.photos)} sent")
        return self.photos


def decode_base64(text: Any, label: str) -> bytes:
    """The bytes of a base64 string or ``data:`` URI (standard or URL-safe alphabet)."""
    if not isinstance(text, str):
        raise InvalidImageError(f"{label} must be a base64 string or a data: URI")
    body = _DATA_URI.sub("", text.strip(), count=1)
    cleaned = "".join(body.split())
    try:
        padded = cleaned + "=" * (-len(cleaned) % 4)
        return base64.b64decode(padded, altchars=b"-_" if ("-" in cleaned or "_" in cleaned) else None, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImageError(f"{label} is not valid base64 image data") from None


async def read_upload(request: Request) -> Upload:
    """The request's photos and fields, from a multipart form or a JSON body."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    upload = Upload()
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        async with request.form(max_files=MAX_FILES, max_fields=100) as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    upload.photos.append(await value.read())
                elif key in PHOTO_KEYS:  # a base64 photo in a text field
                    upload.photos.append(decode_base64(value, key))
                else:
                    upload.fields[key] = value
        return upload
    if kind == "application/json" or kind.endswith("+json"):
        try:
            body = await request.json()
        except ValueError:
            raise ServiceError(422, "ValidationError", "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ServiceError(422, "ValidationError", "the JSON body must be an object")
        for key in PHOTO_KEYS:
            values = body.get(key)
            values = values if isinstance(values, list) else [] if values is None else [values]
            if len(upload.photos) + len(values) > MAX_FILES:
                raise ServiceError(422, "ValidationError", f"at most {MAX_FILES} photos per request")
            upload.photos += [decode_base64(v, f"{key}[{i}]" if key == "photos" else key) for i, v in enumerate(values)]
        upload.fields = {k: v for k, v in body.items() if k not in PHOTO_KEYS}
        return upload
    if not kind and not await request.body():
        return upload
    raise ServiceError(415, "UnsupportedMediaType", "send multipart/form-data (files) or application/json (base64)")


#: a request's photos and fields, as a dependency
PhotoUpload = Annotated[Upload, Depends(read_upload)]


def photo_body(fields: dict[str, str], photos: str, required: list[str]) -> dict[str, Any]:
    """OpenAPI's description of a body of photos, as multipart files or base64 JSON."""
    multipart = {
        "type": "object",
        "required": required,
        "properties": {k: {"type": "string", "description": v} for k, v in fields.items()},
    }
    json_schema = {"type": "object", "required": required, "properties": dict(multipart["properties"])}
    for key in ("photo", "photos"):
        multipart["properties"][key] = {"type": "array", "items": {"type": "string", "format": "binary"}}
    multipart["properties"]["photo"]["description"] = photos
    json_schema["properties"]["photo"] = {"type": "string", "description": "base64 or a data: URI; " + photos}
    json_schema["properties"]["photos"] = {
        "type": "array",
        "items": {"type": "string"},
        "description": "several, base64",
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": multipart}, "application/json": {"schema": json_schema}},
        }
    }


# -- the size limit -----------------------------------------------------------------------------
class BodyLimit:
    """ASGI middleware: a body over ``max_bytes`` is answered 413, by its Content-Length before it is read, or
    as soon as a streamed body passes the limit. Up to :data:`DRAIN` bytes of the rest are read and dropped
    first, so that the client, still sending, gets the answer rather than a reset connection."""

    DRAIN = 64 * 1024 * 1024

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return f"the request body is over the upload limit of {self.max_bytes / 2**20:g} MiB (--max-upload-mb)"

    async def _drain(self, receive: Receive, budget: int) -> None:
        while budget > 0:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                return
            budget -= len(message.get("body", b""))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            if int(declared) <= self.DRAIN:
                await self._drain(receive, self.DRAIN)
            response = problem(413, UploadTooLargeError.__name__, self._message(), {"Connection": "close"})
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if message.get("more_body"):
                        await self._drain(receive, self.DRAIN)
                    raise UploadTooLargeError(self._message())
            return message

        await self.app(scope, limited, send)
