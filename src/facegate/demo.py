"""The office-door story, end to end, offline.

Without a folder it uses photos that installed packages ship: Grace Hopper
(matplotlib's sample data), astronaut Eileen Collins and the "cameraman" (both
scikit-image's data). Each ships one photo per person, so the door camera's shots
are altered copies (mirrored, turned, shrunk, darker, re-encoded) of them.

With ``photos=DIR`` (such as the Happy House folder) it enrolls every photo not
named ``camera_*`` under its file name, then lets the cameras' shots in or not.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from facegate.datasets.folders import image_files
from facegate.errors import FacegateError
from facegate.gallery import Gallery
from facegate.images import load_image

Say = Callable[[str], None]


@dataclass
class DemoOutcome:
    """What happened in each step, so tests (and ``--json``) can check the story."""

    steps: list[dict] = field(default_factory=list)

    def record(self, say: Say, action: str, text: str, **details: object) -> None:
        say(text)
        self.steps.append({"action": action, "message": text, **details})

    def to_dict(self) -> dict:
        return {"steps": self.steps}


#: two public-domain photos shipped with facegate (``data/demo/LICENSE.txt``)
DEMO_PHOTOS = Path(__file__).resolve().parent / "data" / "demo"


def packaged_photos() -> dict[str, Path]:
    """Face photos shipped inside installed packages (no download): matplotlib's sample
    Grace Hopper, and facegate's own two (``data/demo``)."""
    import matplotlib.cbook

    return {
        "grace_hopper": Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
        "eileen_collins": DEMO_PHOTOS / "astronaut.png",
        "cameraman": DEMO_PHOTOS / "camera.png",
    }


def door_camera_shot(photo: Path | np.ndarray, seed: int = 0) -> bytes:
    """A plausible door-camera JPEG of a photo: mirrored, turned, smaller, darker."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(load_image(photo)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = image.rotate(float(rng.uniform(-8, 8)), resample=Image.Resampling.BILINEAR, fillcolor=(40, 40, 40))
    image = image.resize((int(image.width * 0.7), int(image.height * 0.7)), Image.Resampling.LANCZOS)
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.7, 0.85)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


def run_packaged(gallery: Gallery, say: Say) -> DemoOutcome:
    out = DemoOutcome()
    photos = packaged_photos()
    for name in ("grace_hopper", "eileen_collins"):
        result = gallery.enroll(name, [photos[name]])
        out.record(say, "enroll", f"Enrolled {name} from {photos[name].name}.", ok=True, **result.to_dict())

    grace_at_door = door_camera_shot(photos["grace_hopper"], seed=1)
    eileen_at_door = door_camera_shot(photos["eileen_collins"], seed=2)
    _door(out, say, gallery, grace_at_door, "grace_hopper", "Grace Hopper's camera shot")
    _door(out, say, gallery, eileen_at_door, "grace_hopper", "Eileen Collins's camera shot")
    _identify(out, say, gallery, eileen_at_door, "Eileen Collins's camera shot")
    _identify(out, say, gallery, photos["cameraman"], "the cameraman (a small face, turned away)")
    return out


def run_folder(gallery: Gallery, folder: Path, say: Say) -> DemoOutcome:
    out = DemoOutcome()
    files = image_files(folder)
    residents = {p.stem: p for p in files if not p.stem.startswith("camera_")}
    cameras = [p for p in files if p.stem.startswith("camera_")]
    report = gallery.enroll_many({name: [path] for name, path in residents.items()}, add=True)
    out.record(
        say,
        "enroll",
        f"Enrolled {len(report.enrolled)} residents: {', '.join(sorted(report.enrolled))}.",
        ok=True,
        **report.to_dict(),
    )
    for name, why in report.failed.items():
        out.record(say, "enroll", f"Could not enroll {name}: {why}", ok=False, name=name)

    story = [("camera_0", "younes"), ("camera_2", "kian")]
    by_stem = {p.stem: p for p in cameras}
    for stem, claim in story:
        if stem in by_stem and claim in gallery:
            _door(out, say, gallery, by_stem[stem], claim, by_stem[stem].name)
    for camera in cameras:
        _identify(out, say, gallery, camera, camera.name)
    return out


def _door(out: DemoOutcome, say: Say, gallery: Gallery, photo, claim: str, label: str) -> None:
    try:
        result = gallery.verify_identity(photo, claim)
    except FacegateError as exc:
        out.record(say, "verify", f"[door] {label} claims to be {claim}: {exc}", claim=claim, verified=False)
        return
    verdict = f"It's {claim}, welcome in!" if result.verified else f"It's not {claim}, please go away"
    text = f"[door] {label} claims to be {claim}: {verdict} (distance {result.distance:.2f})"
    out.record(say, "verify", text, photo=label, **result.to_dict())


def _identify(out: DemoOutcome, say: Say, gallery: Gallery, photo, label: str) -> None:
    try:
        result = gallery.identify(photo)
    except FacegateError as exc:
        out.record(say, "identify", f"[who]  {label}: {exc}", photo=label, identity=None, error=type(exc).__name__)
        return
    answer = (
        f"It's {result.identity}, the distance is {result.distance:.2f}" if result.known else "Not in the database."
    )
    out.record(say, "identify", f"[who]  {label}: {answer}", photo=label, **result.to_dict())
