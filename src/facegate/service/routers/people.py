"""People: list, enrol (all or nothing), add photos, rename, remove, unlock (admin keys only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from facegate.service import operations as ops
from facegate.service.auth import AdminCaller
from facegate.service.routers.deps import Runner
from facegate.service.uploads import PhotoUpload, photo_body

router = APIRouter(prefix="/v1/people", tags=["people"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No key, an unknown key or a revoked key"},
    403: {"description": "A door key"},
}


class Rename(BaseModel):
    name: str = Field(description="The person's new name")


@router.get("", summary="The enrolled people, and what decisions mean at the gallery's size", responses=ERRORS)
async def list_people(caller: AdminCaller, runner: Runner) -> dict[str, Any]:
    """Each person with their photo count (and `locked_until` while door checks for them are locked); `state`
    holds the operating points and expected error rates at this size."""
    return await runner.call(ops.people)


@router.post(
    "",
    status_code=201,
    summary="Enrol a person from one or more photos (all or nothing)",
    responses={**ERRORS, 409: {"description": "Already enrolled"}, 422: {"description": "A photo failed"}},
    openapi_extra=photo_body({"name": "The new person's name"}, "their photos (one is enough)", ["name"]),
)
async def enroll(request: Request, caller: AdminCaller, upload: PhotoUpload, runner: Runner) -> dict[str, Any]:
    """Every photo is embedded before anything is written: one bad photo (no face, not an image) is a 422 and
    leaves the people and the audit log as they were."""
    name = upload.text("name")
    photos = upload.need(1, 50, "photos")
    return await runner.call(ops.enroll, caller.source(request), name, photos)


@router.post(
    "/{name}/photos",
    summary="Add photos to an enrolled person (all or nothing)",
    responses={**ERRORS, 404: {"description": "Not enrolled"}, 409: {"description": "A photo is already enrolled"}},
    openapi_extra=photo_body({}, "more photos of them", []),
)
async def add_photos(
    request: Request, name: str, caller: AdminCaller, upload: PhotoUpload, runner: Runner
) -> dict[str, Any]:
    photos = upload.need(1, 50, "photos")
    return await runner.call(ops.add_photos, caller.source(request), name, photos)


@router.patch(
    "/{name}",
    summary="Rename a person",
    responses={**ERRORS, 404: {"description": "Not enrolled"}, 409: {"description": "The new name is taken"}},
)
async def rename(request: Request, name: str, body: Rename, caller: AdminCaller, runner: Runner) -> dict[str, Any]:
    return await runner.call(ops.rename, caller.source(request), name, body.name)


@router.delete(
    "/{name}",
    summary="Remove a person and all their photos",
    responses={**ERRORS, 404: {"description": "Not enrolled"}},
)
async def remove(request: Request, name: str, caller: AdminCaller, runner: Runner) -> dict[str, Any]:
    return await runner.call(ops.remove, caller.source(request), name)


@router.post(
    "/{name}/unlock",
    summary="Lift the lock on door checks for a person",
    responses={**ERRORS, 404: {"description": "Not enrolled"}},
)
async def unlock(request: Request, name: str, caller: AdminCaller, runner: Runner) -> dict[str, Any]:
    """`unlocked` is false when the name was not locked."""
    return await runner.call(ops.unlock_person, caller.source(request), name)
