"""Face detection: a registry of named detectors returning boxes and 5 landmarks."""

from facegate.detection.base import Detector, FacialArea
from facegate.detection.detectors import DETECTORS, get_detector

__all__ = ["DETECTORS", "Detector", "FacialArea", "get_detector"]
