"""At the camera: video sources, faces tracked across frames, and a watcher that names each tracked face once.

An adapter around the core (floor 4): detection, embedding and identification come from
:mod:`facegate.pipeline` and :class:`facegate.gallery.Gallery`.
"""

from facegate.live.sources import Frame, VideoSource
from facegate.live.tracking import IoUTracker, Track, iou
from facegate.live.watch import Watcher, watch

__all__ = ["Frame", "IoUTracker", "Track", "VideoSource", "Watcher", "iou", "watch"]
