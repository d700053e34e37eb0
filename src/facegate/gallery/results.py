"""Result types of gallery operations, each serialisable with ``to_dict``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Candidate:
    name: str
    distance: float


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
