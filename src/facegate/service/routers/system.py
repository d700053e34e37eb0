"""Health (no key) and metrics (an admin key: `Authorization: Bearer KEY`, as Prometheus sends it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from facegate import __version__
from facegate.gallery import Gallery
from facegate.gallery.lockout import locked_names
from facegate.service.auth import AdminCaller
from facegate.service.routers.deps import MetricsDep, Runner

router = APIRouter(tags=["system"])


@router.get("/health", summary="Is the service up? (no key)")
async def health() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


def _gauges(gallery: Gallery) -> dict[str, tuple[str, float]]:
    with gallery.store.reading() as db:
        locked = len(locked_names(db))
    people = gallery.people()
    return {
        "facegate_gallery_people": ("People enrolled.", len(people)),
        "facegate_gallery_templates": ("Photos (templates) enrolled.", sum(p.templates for p in people)),
        "facegate_locked_names": ("Names whose door checks are locked now.", locked),
    }


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(caller: AdminCaller, runner: Runner, counts: MetricsDep) -> PlainTextResponse:
    gauges = await runner.call(_gauges)
    return PlainTextResponse(counts.render(gauges), media_type="text/plain; version=0.0.4")
