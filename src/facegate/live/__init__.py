"""At the camera: video sources, faces tracked across frames, a watcher that names each tracked face once,
and liveness by challenge (the person asked for a random action, judged from the frames' landmarks).

An adapter around the core (floor 4): detection, embedding and identification come from
:mod:`facegate.pipeline` and :class:`facegate.gallery.Gallery`.
"""

from facegate.live.liveness import CHALLENGES, LivenessCheck, LivenessResult, new_challenge
from facegate.live.sources import Frame, VideoSource
from facegate.live.tracking import IoUTracker, Track, iou
from facegate.live.watch import Watcher, watch

__all__ = [
    "CHALLENGES",
    "Frame",
    "IoUTracker",
    "LivenessCheck",
    "LivenessResult",
    "Track",
    "VideoSource",
    "Watcher",
    "iou",
    "new_challenge",
    "watch",
]
