"""Result types of gallery operations, each serialisable with ``to_dict``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Candidate:
    """An enrolled person and how close a probe came: the fused distance, and the
    score decisions use (the distance itself, or its cohort-normalised value)."""

    name: str
    distance: float
    score: float | None = None


@dataclass(frozen=True)
class IdentifyResult:
    """Who is this? ``identity`` is None ("not in the database") when the best
    candidate is farther than the threshold, or the gallery is empty."""

    identity: str | None
    distance: float | None
    threshold: float
    candidates: list[Candidate]
    model: str
    detector_backend: str
    similarity_metric: str
    facial_area: dict[str, Any] | None
    time: float
    #: the share of strangers the threshold was chosen to let through (None: a raw threshold)
    target_fpir: float | None = None
    #: the share of strangers that come as close to someone in this gallery as the best candidate
    estimated_fpir: float | None = None
    enrolled_people: int = 0
    threshold_source: str = ""
    #: what ran the network, and the test-time augmentation ("flip" or "none")
    engine: str = ""
    tta: str = ""

    @property
    def known(self) -> bool:
        return self.identity is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EnrollResult:
    name: str
    template_ids: list[int]
    facial_areas: list[dict[str, Any]] = field(default_factory=list)
    #: faces the detector found in each photo (the main one was enrolled)
    faces_found: list[int] = field(default_factory=list)

    @property
    def crowded(self) -> list[int]:
        """Positions of the photos that held several faces."""
        return [i for i, n in enumerate(self.faces_found) if n > 1]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "templates_added": len(self.template_ids)}


@dataclass
class EnrollManyReport:
    """What :meth:`Gallery.enroll_many` did: photos enrolled per person, who failed and why."""

    enrolled: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: identification is "usable" while it finds at least this share of enrolled people
USABLE_FNIR = 0.2


@dataclass(frozen=True)
class GalleryState:
    """A gallery's size and the error rates its operating points imply at that size."""

    people: int
    templates: int
    door: dict[str, Any]
    identification: dict[str, Any]
    score: str
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def describe(cls, people: int, templates: int, typical: int, door, identification, scoring) -> GalleryState:
        warnings = []
        fnir = identification.expected_fnmr
        if not identification.reachable:
            warnings.append(
                f"identification cannot reach FPIR {identification.target:g} with {people} people: even the "
                "strictest measured threshold lets more strangers through"
            )
        if fnir is not None and fnir > USABLE_FNIR:
            warnings.append(
                f"at FPIR {identification.target:g} with {people} people about {fnir:.0%} of enrolled people would "
                "not be recognised from one photo: enrol more photos per person, take several frames per probe, "
                "allow a higher FPIR, or use a stronger model"
            )
        door_dict = {**door.to_dict(), "templates_per_person": typical}
        return cls(people, templates, door_dict, identification.to_dict(), scoring.kind, warnings)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
