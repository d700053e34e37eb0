"""Persistent galleries of enrolled people: enrollment, identification, door checks."""

from facegate.gallery.gallery import Gallery
from facegate.gallery.results import Candidate, EnrollResult, IdentifyResult
from facegate.gallery.store import PersonRecord

__all__ = ["Candidate", "EnrollResult", "Gallery", "IdentifyResult", "PersonRecord"]
