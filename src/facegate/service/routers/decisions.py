"""Decisions: the door check (1:1 against a claimed person), identification (1:K) and comparison (1:1)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from facegate.errors import LockedOutError
from facegate.service import operations as ops
from facegate.service.auth import DoorCaller
from facegate.service.routers.deps import MetricsDep, Runner, Settings
from facegate.service.uploads import PhotoUpload, photo_body

router = APIRouter(prefix="/v1", tags=["decisions"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No key, an unknown key or a revoked key"},
    413: {"description": "The body is over the upload limit"},
    422: {"description": "Not an image, over the pixel limit, no face, or too poor a face to decide on"},
}


@router.post(
    "/verify",
    summary="The door check: is this the person they claim to be?",
    responses={
        **ERRORS,
        404: {"description": "The claimed person is not enrolled"},
        423: {"description": "Door checks for this name are locked (verified false, locked true): no match tried"},
    },
    openapi_extra=photo_body(
        {"name": "The person the visitor claims to be"}, "the visitor's photo (several: frames of one face)", ["name"]
    ),
)
async def verify(
    request: Request, caller: DoorCaller, upload: PhotoUpload, runner: Runner, settings: Settings, metrics: MetricsDep
) -> dict[str, Any]:
    """The same decision as `facegate verify --as NAME`, at the gallery's door operating point (its target FMR
    is in the answer). A 200 is a decision (`verified`); a 423 means the name is locked after refusals in a row
    and nothing was matched. `locked` in a 200 says whether this refusal has just locked the name."""
    name = upload.text("name")
    photos = upload.need(1, 10, "photo")
    try:
        result = await runner.call(ops.door_check, settings, caller.source(request), name, photos)
    except LockedOutError:
        metrics.decision("verify", "locked")
        raise
    metrics.decision("verify", "accepted" if result["verified"] else "refused")
    return result


@router.post(
    "/identify",
    summary='Who is this? ("not in the database" is an answer)',
    responses=ERRORS,
    openapi_extra=photo_body(
        {"top_k": "Candidates to report (default 3)"}, "the photo (several: frames of one face)", []
    ),
)
async def identify(
    request: Request, caller: DoorCaller, upload: PhotoUpload, runner: Runner, settings: Settings, metrics: MetricsDep
) -> dict[str, Any]:
    """Open-set identification at the gallery's target FPIR (in the answer): `identity` is null when the best
    candidate is farther than the threshold."""
    top_k = upload.integer("top_k", 3, 1, 100)
    photos = upload.need(1, 10, "photo")
    result = await runner.call(ops.identify, settings, caller.source(request), photos, top_k)
    metrics.decision("identify", "identified" if result["identity"] is not None else "unknown")
    return result


@router.post(
    "/compare",
    summary="Are two photos of one person? (no gallery)",
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["img1", "img2"],
                        "properties": {
                            "img1": {"type": "string", "format": "binary"},
                            "img2": {"type": "string", "format": "binary"},
                        },
                    }
                },
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["img1", "img2"],
                        "properties": {"img1": {"type": "string"}, "img2": {"type": "string"}},
                    }
                },
            },
        }
    },
)
async def compare(
    request: Request, caller: DoorCaller, upload: PhotoUpload, runner: Runner, settings: Settings, metrics: MetricsDep
) -> dict[str, Any]:
    """`facegate compare`: every face of one photo against every face of the other, at the door's target FMR."""
    img1, img2 = upload.need(2, 2, "img1 and img2")
    result = await runner.call(ops.compare, settings, caller.source(request), img1, img2)
    metrics.decision("compare", "same" if result["verified"] else "different")
    return result
