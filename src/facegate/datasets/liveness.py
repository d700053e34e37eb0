"""Liveness sequences built from real photos, and attacks built from one photo.

There is no public video of people asked to blink or turn here, so the genuine
sequences are made of still photos of the same sitting, in the order the action would
show them:

- a **blink** from Yale Faces: ``normal``, ``normal``, ``sleepy`` (the eyes half shut),
  ``normal``, ``normal``;
- a **turn** from ORL/AT&T: the subject's most frontal photo (smallest estimated yaw),
  then the photos on one side of it in order of estimated yaw up to the most turned, and
  back down; the side is the one the subject's photos turn furthest to, which makes the
  challenge ``turn_left`` or ``turn_right``.

The attacks are what a person holding photos of the subject can show the camera:

- ``repeated``: one photo, unchanged, frame after frame;
- ``rigid``: the photo slid, scaled and rotated in the image plane a little each frame (as a hand
  would, slowly enough to pass for one face in a sequence);
- ``turned``: the photo turned about its vertical axis (perspective), up to 40° and back;
- ``tilted``: the photo tilted about its horizontal axis, up to 55° and back (the eyes
  look shorter: a naive eye-ratio blink detector sees a blink);
- ``swapped``: two photos of the subject of one sitting shown one after the other
  in the same place (Yale: ``normal`` and ``wink``; ORL: the frontal and the most turned);
- ``impostor``: another subject's genuine sequence, claimed as this subject.

The one photo is Yale's ``normal`` and ORL's most frontal one. Frames are RGB arrays; a
photo moved about is pasted on a grey canvas half again its size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facegate.images import load_image

#: frames of a genuine sequence (a blink; a turn's length follows from the photos)
BLINK_FRAMES = ("normal", "normal", "sleepy", "normal", "normal")
#: Yale photos each subject is enrolled from (none is part of a sequence)
YALE_ENROL = ("glasses", "sad")
#: frames of an attack sequence
ATTACK_FRAMES = 7
#: the attack kinds, in report order
ATTACKS = ("repeated", "rigid", "turned", "tilted", "swapped", "impostor")


@dataclass
class Subject:
    """One person of a data set: their photos, enrolment photos, the one photo attacks use, and their sequence."""

    name: str
    dataset: str
    enrol: list[np.ndarray]
    photo: np.ndarray
    #: the genuine sequence and its challenge
    frames: list[np.ndarray]
    challenge: str
    #: the second photo of a swap
    other: np.ndarray
    #: per photo used, its estimated yaw (ORL)
    yaws: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """One sequence to judge: whose it is, who is claimed, under which challenge, and whether it should pass."""

    kind: str
    subject: str
    claim: str
    challenge: str
    frames: list[np.ndarray]
    genuine: bool


def yale_subjects(root: str | Path, numbers: Iterable[int] = range(1, 16)) -> list[Subject]:
    """Yale's subjects (all 15 by default), each with a blink sequence."""
    root = Path(root)
    out = []
    for number in numbers:
        name = f"yale{number:02d}"

        def photo(condition: str, number: int = number) -> np.ndarray:
            return load_image(str(root / f"subject{number:02d}.{condition}"))

        normal = photo("normal")
        out.append(
            Subject(
                name=name,
                dataset="yale",
                enrol=[photo(c) for c in YALE_ENROL],
                photo=normal,
                frames=[photo(c) for c in BLINK_FRAMES],
                challenge="blink",
                other=photo("wink"),
            )
        )
    return out


def orl_subjects(
    root: str | Path, yaw_of: Callable[[np.ndarray], float | None], numbers: Iterable[int] = range(1, 41)
) -> list[Subject]:
    """ORL's subjects (all 40 by default), each with a turn sequence ordered by ``yaw_of`` (degrees, + the
    person's left).

    Photos whose yaw cannot be estimated (no face found) are left out. The subject is
    enrolled from the photos the sequence does not use (or, when it uses them all, its
    first photo, which then is both).
    """
    root = Path(root)
    out = []
    for number in numbers:
        photos = {p.stem: load_image(str(p)) for p in sorted(root.glob(f"s{number}/*.pgm"), key=lambda p: int(p.stem))}
        yaws = {k: y for k, y in ((k, yaw_of(img)) for k, img in photos.items()) if y is not None}
        start = min(yaws, key=lambda k: abs(yaws[k]))
        furthest = max(yaws, key=lambda k: abs(yaws[k] - yaws[start]))
        sign = 1.0 if yaws[furthest] >= yaws[start] else -1.0
        side = sorted((k for k in yaws if sign * (yaws[k] - yaws[start]) >= 0), key=lambda k: sign * yaws[k])
        side.remove(start)
        order = [start, *side, *reversed(side[:-1]), start]
        unused = [k for k in photos if k not in order]
        out.append(
            Subject(
                name=f"orl{number:02d}",
                dataset="orl",
                enrol=[photos[k] for k in unused] or [photos[order[0]]],
                photo=photos[start],
                frames=[photos[k] for k in order],
                challenge="turn_left" if sign > 0 else "turn_right",
                other=photos[furthest],
                yaws={k: round(yaws[k], 1) for k in order},
            )
        )
    return out


# -- attacks ------------------------------------------------------------------------------
def canvas(photo: np.ndarray, matrix: np.ndarray | None = None, grow: float = 1.5) -> np.ndarray:
    """``photo`` on a grey canvas ``grow`` times its size, warped by ``matrix`` (3x3, about the canvas centre)."""
    h, w = photo.shape[:2]
    big_w, big_h = int(round(w * grow)), int(round(h * grow))
    place = np.array([[1, 0, (big_w - w) / 2], [0, 1, (big_h - h) / 2], [0, 0, 1]], dtype=np.float64)
    centre = np.array([[1, 0, big_w / 2], [0, 1, big_h / 2], [0, 0, 1]], dtype=np.float64)
    warp = place if matrix is None else centre @ matrix @ np.linalg.inv(centre) @ place
    return cv2.warpPerspective(photo, warp, (big_w, big_h), flags=cv2.INTER_LINEAR, borderValue=(128, 128, 128))


def similarity(shift_x: float, shift_y: float, scale: float, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = scale * np.cos(a), scale * np.sin(a)
    return np.array([[c, -s, shift_x], [s, c, shift_y], [0, 0, 1]], dtype=np.float64)


def turned(degrees: float, axis: str, size: tuple[int, int], distance: float = 2.5) -> np.ndarray:
    """The homography of a flat photo of ``size`` (w, h) turned ``degrees`` about its vertical
    (``axis="y"``) or horizontal (``"x"``) axis, seen by a camera ``distance`` photo-widths away."""
    w = size[0]
    f = distance * w
    a = np.radians(degrees)
    if axis == "y":
        rotation = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    else:
        rotation = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    camera = np.array([[f, 0, 0], [0, f, 0], [0, 0, 1]], dtype=np.float64)
    # a plane point (x, y, 0) about the centre, at depth f: H = K [r1 r2 t]
    plane = np.c_[rotation[:, 0], rotation[:, 1], np.array([0, 0, f])]
    homography = camera @ plane
    return homography / homography[2, 2]


def _there_and_back(peak: float, frames: int) -> np.ndarray:
    """0 up to ``peak`` and back to 0 over ``frames`` frames."""
    return peak * np.sin(np.linspace(0, np.pi, frames))


def attack_frames(kind: str, subject: Subject) -> list[np.ndarray]:
    """An attack's frames (not ``impostor``, which is another subject's genuine sequence)."""
    photo, n = subject.photo, ATTACK_FRAMES
    w, h = photo.shape[1], photo.shape[0]
    if kind == "repeated":
        return [canvas(photo)] * n
    if kind == "rigid":
        t = np.linspace(0, 1, n)
        moves = [
            similarity(0.06 * w * np.sin(2 * np.pi * s), 0.04 * h * s, 1 + 0.1 * np.sin(np.pi * s), 8 * s) for s in t
        ]
        return [canvas(photo, m) for m in moves]
    if kind == "turned":
        return [canvas(photo, turned(a, "y", (w, h))) for a in _there_and_back(40, n)]
    if kind == "tilted":
        return [canvas(photo, turned(a, "x", (w, h))) for a in _there_and_back(55, n)]
    if kind == "swapped":
        first, second = canvas(photo), canvas(subject.other)
        return [first] * 2 + [second] * 3 + [first] * 2
    raise ValueError(f"unknown attack {kind!r}; choose one of: {', '.join(ATTACKS)}")


def cases(subjects: list[Subject], challenges: list[str]) -> Iterator[Case]:
    """Every subject's genuine sequence (under its own challenge), and every attack on every
    subject under each of ``challenges`` (an impostor: the next subject of the same data set)."""
    for subject in subjects:
        yield Case("genuine", subject.name, subject.name, subject.challenge, subject.frames, True)
    by_set: dict[str, list[Subject]] = {}
    for subject in subjects:
        by_set.setdefault(subject.dataset, []).append(subject)
    for kind in ATTACKS:
        for subject in subjects:
            if kind == "impostor":
                group = by_set[subject.dataset]
                other = group[(group.index(subject) + 1) % len(group)]
                yield Case(kind, other.name, subject.name, other.challenge, other.frames, False)
                continue
            frames = attack_frames(kind, subject)
            for challenge in challenges:
                yield Case(kind, subject.name, subject.name, challenge, frames, False)
