"""The audit log (admin keys only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from facegate.gallery.audit import EventQuery
from facegate.service import operations as ops
from facegate.service.auth import AdminCaller
from facegate.service.problems import ServiceError
from facegate.service.routers.deps import Runner

router = APIRouter(prefix="/v1/events", tags=["audit log"])


@router.get("", summary="The audit log, newest first, filtered and paginated")
async def list_events(
    caller: AdminCaller,
    runner: Runner,
    since: Annotated[
        str | None,
        Query(description="ISO 8601 (UTC unless a zone is given), a date, today, yesterday, or an age: 15m, 2h, 7d"),
    ] = None,
    until: Annotated[str | None, Query(description="As since; a date alone means its whole day")] = None,
    person: Annotated[str | None, Query(description="The claimed, identified or changed person")] = None,
    outcome: Annotated[
        str | None,
        Query(
            description="accepted, refused, locked, identified, unknown, same, different, done, unlocked, "
            "issued, used (a liveness challenge)"
        ),
    ] = None,
    kind: Annotated[
        str | None,
        Query(
            description="verify, identify, compare, enroll, add_photos, rename, remove, key_created, key_revoked, "
            "lock, unlock, liveness (a door check by challenge), liveness_challenge (a challenge issued or used)"
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[int | None, Query(description="The next page: the `next_before` of the previous one")] = None,
) -> dict[str, Any]:
    """`next_before` is null on the last page."""
    query = EventQuery(since, until, person, outcome, kind, limit, before)
    return await runner.call(ops.events, query)


@router.get(
    "/{event_id}/photos/{position}",
    summary="A decision's photo, while it is kept (facegate serve --keep-photos DAYS)",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}}, 404: {"description": "Not kept, or expired"}},
)
async def event_photo(event_id: int, position: int, caller: AdminCaller, runner: Runner) -> Response:
    photo = await runner.call(ops.event_photo, event_id, position)
    if photo is None:
        raise ServiceError(404, "NotFound", f"no photo {position} is kept for event {event_id}")
    return Response(photo, media_type=_media_type(photo))


def _media_type(data: bytes) -> str:
    for magic, kind in (
        (b"\xff\xd8", "image/jpeg"),
        (b"\x89PNG", "image/png"),
        (b"GIF8", "image/gif"),
        (b"BM", "image/bmp"),
    ):
        if data.startswith(magic):
            return kind
    return "image/webp" if data[8:12] == b"WEBP" else "application/octet-stream"
