"""Liveness by challenge: ask for a random action, then send the camera's frames that perform it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from facegate.errors import LockedOutError
from facegate.service import liveness
from facegate.service.auth import DoorCaller
from facegate.service.problems import ServiceError
from facegate.service.routers.decisions import ERRORS
from facegate.service.routers.deps import MetricsDep, Runner, Settings
from facegate.service.uploads import PhotoUpload, photo_body

router = APIRouter(prefix="/v1/liveness", tags=["decisions"])

#: frames one answer may carry (about 4 seconds at 8 frames a second, and some slack)
MAX_FRAMES = 48


@router.post(
    "/challenges",
    summary="Ask for a random action (blink, turn left, turn right) before a live door check",
    responses={404: {"description": "The claimed person is not enrolled"}, 401: ERRORS[401]},
)
async def new_challenge(request: Request, caller: DoorCaller, upload: PhotoUpload, runner: Runner) -> dict[str, Any]:
    """A challenge for `name` (form or JSON field): its `id`, the `challenge` and the `prompt` to show, and
    `expires_at`. The action is chosen by the service (unpredictably) unless `challenge` names one. Answer it
    once, before it expires, at `POST /v1/liveness/challenges/{id}/frames`."""
    name = upload.text("name")
    challenge = upload.fields.get("challenge") or None
    return await runner.call(liveness.issue, caller.source(request), name, challenge)


@router.post(
    "/challenges/{challenge_id}/frames",
    summary="The frames answering a challenge: is it the person, live, doing the action?",
    responses={
        **ERRORS,
        404: {"description": "No such challenge, or the claimed person is no longer enrolled"},
        409: {"description": "The challenge was already answered"},
        410: {"description": "The challenge expired"},
        423: {"description": "Door checks for this name are locked: nothing was judged"},
    },
    openapi_extra=photo_body(
        {"times": "Optional: each frame's time in seconds, comma-separated"},
        "the camera's frames, in order (3 to 48)",
        [],
    ),
)
async def answer(
    challenge_id: str,
    request: Request,
    caller: DoorCaller,
    upload: PhotoUpload,
    runner: Runner,
    settings: Settings,
    metrics: MetricsDep,
) -> dict[str, Any]:
    """The liveness decision (`facegate verify --live`): `accepted` (the door opens) only when `live` (the
    action was seen, performed by one face that moved like a head) and `verified` (that face is the claimed
    person at the door's operating point); `reason` says which check failed first."""
    frames = upload.need(3, MAX_FRAMES, "frames")
    times = None
    if upload.fields.get("times"):
        try:
            times = [float(t) for t in str(upload.fields["times"]).split(",")]
        except ValueError:
            raise ServiceError(422, "ValidationError", "times: comma-separated numbers expected") from None
        if len(times) != len(frames):
            raise ServiceError(422, "ValidationError", f"times: {len(frames)} expected, {len(times)} sent")
    try:
        result = await runner.call(liveness.answer, settings, caller.source(request), challenge_id, frames, times)
    except LockedOutError:
        metrics.decision("liveness", "locked")
        raise
    metrics.decision("liveness", "accepted" if result["accepted"] else "refused")
    return result
