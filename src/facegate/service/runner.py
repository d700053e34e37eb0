"""One gallery per worker process, and the one thread that uses it.

The gallery (its SQLite connection and in-memory index) is opened once when the
process starts, and the model is loaded and run once then, so the first request is
as fast as the others. Every gallery operation runs on a single thread of its own,
off the event loop: the loop keeps accepting and answering requests (``/health``,
``/metrics``, uploads) while a face is being embedded, and the gallery is never used
by two threads at once. The CPU-bound work itself (detection, alignment, the
network) runs in parallel across worker processes (``facegate serve --workers N``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from facegate.gallery import Gallery
from facegate.gallery.audit import purge_photos
from facegate.service.settings import ServeSettings

T = TypeVar("T")
log = logging.getLogger("facegate.service")


def open_gallery(settings: ServeSettings) -> Gallery:
    """The service's gallery (created if the file does not exist yet; its folder must)."""
    return Gallery(settings.gallery, detector_backend=settings.detector, fmr=settings.fmr, fpir=settings.fpir)


def warm_up(gallery: Gallery) -> None:
    """Load the detector and the network and run them once, on a face photo matplotlib ships (no download)."""
    import matplotlib.cbook

    from facegate.pipeline import represent

    try:
        photo = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        represent(photo, gallery.model, gallery.detector, tta=gallery.tta)
    except Exception as exc:  # a failed warm-up only makes the first request slower
        log.warning("warm-up failed (%s: %s); the first request loads the model", type(exc).__name__, exc)


class GalleryRunner:
    """Runs gallery operations ``fn(gallery, *args)`` on the gallery's own thread."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facegate-gallery")
        self._gallery: Gallery | None = None

    def _open(self) -> Gallery:
        gallery = open_gallery(self.settings)
        with gallery.store.transaction() as db:
            purged = purge_photos(db)
        if purged:
            log.info("purged %d kept photos past their retention period", purged)
        if self.settings.warm_up:
            warm_up(gallery)
        return gallery

    async def start(self) -> None:
        self._gallery = await asyncio.get_running_loop().run_in_executor(self._executor, self._open)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._gallery is None:
            raise RuntimeError("the gallery is not open yet")
        task = partial(fn, self._gallery, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, task)

    def close(self) -> None:
        gallery, self._gallery = self._gallery, None
        if gallery is not None:
            self._executor.submit(gallery.close).result()
        self._executor.shutdown(wait=True)
