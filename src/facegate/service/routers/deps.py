"""Dependencies the routers share: the process's gallery runner and settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from facegate.service.metrics import Metrics
from facegate.service.runner import GalleryRunner
from facegate.service.settings import ServeSettings


def runner(request: Request) -> GalleryRunner:
    return request.app.state.runner


def settings(request: Request) -> ServeSettings:
    return request.app.state.settings


def metrics(request: Request) -> Metrics:
    return request.app.state.metrics


Runner = Annotated[GalleryRunner, Depends(runner)]
Settings = Annotated[ServeSettings, Depends(settings)]
MetricsDep = Annotated[Metrics, Depends(metrics)]
