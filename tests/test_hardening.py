"""Regression tests for hostile and careless input: images, names, damaged and contended galleries."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
from PIL import Image

from facegate.detection.base import MAX_DETECTOR_PIXELS, max_level
from facegate.errors import (
    GalleryError,
    ImageError,
    InvalidImageError,
    InvalidNameError,
    PersonNotFoundError,
)
from facegate.gallery import Gallery
from facegate.images import load_image

from .conftest import data_dir, solid


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# -- images ---------------------------------------------------------------------------------
def test_an_elongated_image_is_refused_before_any_detector_sees_it():
    """A 47 KB PNG of 160x100,000 pixels once aborted the process inside dlib."""
    data = png(np.zeros((100_000, 160, 3), np.uint8))
    assert len(data) < 200_000
    with pytest.raises(InvalidImageError, match="more than 20 times longer than wide"):
        load_image(data)


def test_detector_work_is_bounded(monkeypatch):
    """No detector level is handed more than MAX_DETECTOR_PIXELS; a larger image is searched shrunk."""
    from facegate.detection import get_detector

    seen = []
    hog = get_detector("hog")
    real = type(hog).detect

    def spy(self, image, upsample=0):
        seen.append(image.shape[0] * image.shape[1] * 4**upsample)
        return real(self, image, upsample)

    monkeypatch.setattr(type(hog), "detect", spy)
    face = load_image(data_dir("lfw", "images", "Aaron_Peirsol") / "Aaron_Peirsol_0001.jpg")
    big = np.asarray(Image.fromarray(face).resize((6000, 6000)))
    found = hog.find(big)
    assert max(seen) <= MAX_DETECTOR_PIXELS
    # the face is found in the shrunk image and mapped back to the original's pixels
    assert len(found) == 1 and 1700 < found[0].x < 1950 and 2200 < found[0].w < 2600
    assert max_level(np.zeros((150, 100))) == 5  # 15,000 px x 4**5 = 15.4 MP and max_level(np.zeros((4000, 4000))) == 0
    seen.clear()
    hog.find(np.zeros((1000, 4000, 3), np.uint8), upsample=3)  # an explicit level is lowered to fit
    assert seen == [1000 * 4000 * 4]


def test_only_the_formats_users_send_are_decoded():
    dds = b"DDS |" + bytes(124) + bytes(64)  # a DDS header: Pillow has a decoder, facegate does not use it
    with pytest.raises(InvalidImageError, match="not an image in a supported format"):
        load_image(dds)
    pgm = data_dir("orl", "s1") / "1.pgm"
    assert load_image(pgm).shape == (112, 92, 3)


def test_every_decoder_failure_is_typed():
    good = png(np.full((64, 64, 3), 128, np.uint8))
    for mutant in (good[:40], good[:8] + bytes(reversed(good[8:200])) + good[200:], good.replace(b"IDAT", b"IDAx")):
        with pytest.raises(ImageError):
            load_image(mutant)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix itself warns
def test_odd_arrays():
    assert load_image(np.matrix(np.full((8, 8), 255))).shape == (8, 8, 3)
    with pytest.raises(ImageError, match="up to 65535"):
        load_image(np.full((8, 8), 70_000, np.uint32))
    assert load_image(np.full((8, 8), 65535, np.uint32))[0, 0].tolist() == [255, 255, 255]


def test_bytes_like_photos_are_one_photo(fake_gallery):
    photo = png(solid((200, 20, 20)))
    for kind in (bytes, bytearray, memoryview):
        fake_gallery.enroll(f"red-{kind.__name__}", kind(photo))
    assert [p.templates for p in fake_gallery.people()] == [1, 1, 1]


# -- names ----------------------------------------------------------------------------------
def test_names_are_nfc_and_free_of_control_characters(fake_gallery):
    nfc, nfd = unicodedata.normalize("NFC", "José"), unicodedata.normalize("NFD", "José")
    assert nfc != nfd
    fake_gallery.enroll(nfd, [solid((200, 20, 20))])
    assert [p.name for p in fake_gallery.people()] == [nfc]
    assert nfd in fake_gallery and nfc in fake_gallery
    with pytest.raises(GalleryError, match="already enrolled"):
        fake_gallery.enroll(nfc, [solid((20, 200, 20))])
    assert fake_gallery.verify_identity(solid((200, 20, 20)), nfd).identity == nfc
    for bad in ("line\nbreak", "tab\there", "bell\x07", "\u200bzero-width"):
        with pytest.raises(InvalidNameError, match="control characters"):
            fake_gallery.enroll(bad, [solid((20, 20, 200))])
        with pytest.raises(InvalidNameError):
            fake_gallery.rename(nfc, bad)
    assert [p.name for p in fake_gallery.people()] == [nfc]


# -- embeddings -------------------------------------------------------------------------------
def test_empty_and_non_finite_embeddings_are_refused(fake_gallery):
    with pytest.raises(GalleryError, match="at least one"):
        fake_gallery.add_embeddings("empty", np.zeros((0, 3)))
    for bad in (np.nan, np.inf):
        with pytest.raises(GalleryError, match="NaN or infinite"):
            fake_gallery.add_embeddings("bad", np.array([[0.1, bad, 0.2]]))
    assert fake_gallery.people() == [] and fake_gallery.template_count == 0
    with pytest.raises(PersonNotFoundError):
        fake_gallery.verify_identity(solid((1, 2, 3)), "empty")


# -- damaged and unusable gallery files --------------------------------------------------------
def make_gallery(path) -> None:
    with Gallery(path, "mean-colour", "flat", threshold=0.1) as gallery:
        gallery.enroll("red", [solid((200, 20, 20))])
        gallery.enroll("green", [solid((20, 200, 20))])


@pytest.mark.parametrize("keep", [lambda n: n - 1, lambda n: n // 2], ids=["one byte short", "half"])
def test_a_truncated_gallery_is_a_gallery_error(tmp_path, keep):
    path = tmp_path / "g.sqlite"
    make_gallery(path)
    data = path.read_bytes()
    path.write_bytes(data[: keep(len(data))])
    with pytest.raises(GalleryError, match="damaged"):
        Gallery(path, threshold=0.1)
    assert len(path.read_bytes()) == keep(len(data))  # opening it changed nothing


def test_a_damaged_template_is_a_gallery_error(tmp_path):
    path = tmp_path / "g.sqlite"
    make_gallery(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE templates SET embedding = x'0102' WHERE id = 1")
    with pytest.raises(GalleryError, match="1 template"):
        Gallery(path, threshold=0.1)


def test_an_unknown_stored_model_is_a_gallery_error(tmp_path):
    path = tmp_path / "g.sqlite"
    make_gallery(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = 'no-such-model' WHERE key = 'model'")
    with pytest.raises(GalleryError, match="'no-such-model', which is not available here") as info:
        Gallery(path)
    assert info.value.exit_code == 5


def test_unusable_places_are_gallery_errors(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(GalleryError, match="is a file, not a folder"):
        Gallery(afile / "g.sqlite")
    with pytest.raises(GalleryError, match="does not exist"):
        Gallery(tmp_path / "missing" / "g.sqlite")
    with pytest.raises(GalleryError, match="there is no gallery"):
        Gallery(tmp_path / "g.sqlite", create=False)
    not_a_gallery = tmp_path / "notes.sqlite"
    with sqlite3.connect(not_a_gallery) as db:
        db.execute("CREATE TABLE notes (x)")
    with pytest.raises(GalleryError, match="not a facegate gallery"):
        Gallery(not_a_gallery)


def test_a_full_disk_is_a_gallery_error_and_changes_nothing(tmp_path):
    """SQLite's "disk full" (simulated by capping the file's pages) says what to do; nothing is half-written."""
    path = tmp_path / "g.sqlite"
    make_gallery(path)
    with Gallery(path, threshold=0.1) as gallery:
        pages = gallery._store._db.execute("PRAGMA page_count").fetchone()[0]
        gallery._store._db.execute(f"PRAGMA max_page_count = {pages}")
        many = {f"p{i}": np.random.default_rng(i).random((50, 3)) for i in range(40)}
        with pytest.raises(GalleryError, match="free some disk space"):
            gallery.add_embeddings_bulk(many)
        assert [p.name for p in gallery.people()] == ["green", "red"]


def test_a_read_only_gallery_is_a_gallery_error_and_stays_readable(tmp_path):
    """Writing to a gallery the process may not write says so; reading it still works.
    As root, permissions do not stop writes, so the file is made immutable instead."""
    path = tmp_path / "g.sqlite"
    make_gallery(path)
    protect = ["chattr", "+i", str(path)] if os.geteuid() == 0 else ["chmod", "444", str(path)]
    subprocess.run(protect, check=True)
    try:
        with Gallery(path, detector_backend="flat", threshold=0.1) as gallery:
            with pytest.raises(GalleryError, match="read-only: copy it somewhere writable"):
                gallery.enroll("blue", [solid((20, 20, 200))])
            assert [p.name for p in gallery.people()] == ["green", "red"]
    finally:
        subprocess.run(["chattr", "-i", str(path)] if os.geteuid() == 0 else ["chmod", "644", str(path)], check=True)


# -- concurrency -------------------------------------------------------------------------------
def _open_and_enroll(path: str, person: int) -> str:
    sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
    import tests.conftest  # noqa: F401  (registers the stand-in model and detector)

    try:
        with Gallery(path, "mean-colour", "flat", threshold=0.1) as gallery:
            gallery.enroll(f"p{person}", [solid((person, 100, 200))])
        return "ok"
    except Exception as exc:  # reported to the parent, which asserts there is none
        return f"{type(exc).__name__}: {exc}"


def test_concurrent_opens_of_a_new_gallery_all_succeed(tmp_path):
    """16 processes create and enrol into one new gallery file at once: nobody is lost."""
    for round_ in range(3):
        path = str(tmp_path / f"g{round_}.sqlite")
        with multiprocessing.get_context("spawn").Pool(8) as pool:
            outcomes = pool.starmap(_open_and_enroll, [(path, i + 1) for i in range(16)])
        assert outcomes == ["ok"] * 16
        with Gallery(path, "mean-colour", "flat", threshold=0.1) as gallery:
            assert len(gallery) == 16


def test_a_crash_in_a_subprocess_is_caught(tmp_path):
    """The decoder never aborts the interpreter on the old crash input (run apart, so an abort is seen)."""
    script = (
        "import numpy as np, io\n"
        "from PIL import Image\n"
        "import facegate\n"
        "buf = io.BytesIO(); Image.fromarray(np.zeros((99_000, 160, 3), np.uint8)).save(buf, format='PNG')\n"
        "try:\n"
        "    facegate.represent(buf.getvalue())\n"
        "except facegate.ImageError as exc:\n"
        "    print('typed:', type(exc).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "typed: InvalidImageError"


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (workers are the fork server's children)."""
    out: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out |= {int(c) for c in fh.read().split()}
    except FileNotFoundError:
        return out
    for child in list(out):
        out |= _descendants(child)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_parent(tmp_path):
    """SIGKILL during a batch embedding leaves no worker process running."""
    import signal
    import time

    (tmp_path / "sleepy.py").write_text(
        "import time\n"
        "from facegate.detection import DETECTORS, Detector\n"
        "@DETECTORS.register('sleepy')\n"
        "class Sleepy(Detector):\n"
        "    name = 'sleepy'\n"
        "    def detect(self, image, upsample=0):\n"
        "        time.sleep(0.5)\n"
        "        return []\n"
    )
    script = (
        "import sys, numpy as np\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import sleepy  # a slow detector the workers import too\n"
        "from facegate.pipeline import represent_many\n"
        "images = [np.full((32, 32, 3), i % 250 + 1, np.uint8) for i in range(400)]\n"
        "print('start', flush=True)\n"
        "represent_many(images, 'pixels', 'sleepy', workers=2, batch_size=4)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "start"
    deadline = time.time() + 60
    while len(_descendants(proc.pid)) < 4 and time.time() < deadline:  # fork server, tracker, 2 workers
        time.sleep(0.1)
    workers = _descendants(proc.pid)
    assert len(workers) >= 4
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.time() + 10
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)


def test_enrolling_from_a_group_photo_says_which_face_was_taken(tmp_path):
    from click.testing import CliRunner

    from facegate.cli import main

    photo = data_dir("face_recognition_examples", "examples") / "two_people.jpg"
    run = CliRunner().invoke(main, ["enroll", "obama", str(photo), "--gallery", str(tmp_path / "g.sqlite")])
    assert run.exit_code == 0
    assert run.output.splitlines() == [
        "Enrolled obama from 1 photo.",
        f"  note: {photo} shows 2 faces; the main one (largest near the middle) was enrolled as obama",
    ]
    with Gallery(tmp_path / "g.sqlite") as gallery:
        single = gallery.enroll("younes", [data_dir("happyhouse", "images") / "younes.jpg"])
    assert single.faces_found == [1] and single.crowded == []


def test_mutated_photos_in_every_format_give_a_typed_error_or_a_result():
    """Hypothesis mutates a real photo (truncations, byte flips, insertions) in each accepted
    format and feeds it to represent and Gallery.enroll, in a separate process so that an
    abort in native code fails this test instead of killing the test session."""
    photo = data_dir("happyhouse", "images") / "younes.jpg"
    tool = os.path.join(os.path.dirname(__file__), "tools", "fuzz_images.py")
    out = subprocess.run([sys.executable, tool, str(photo), "60"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    inputs, typed, results = (int(v) for v in out.stdout.split()[1::2])
    print(out.stdout.strip())
    assert inputs == 7 * 60 and typed + results == inputs and typed > 0 and results > 0


def test_one_bad_file_never_stops_a_batch(tmp_path):
    """A file named .jpg that holds another format (DDS) fails its person only."""
    from click.testing import CliRunner

    from facegate.cli import main

    for person, colour in (("red", (200, 20, 20)), ("green", (20, 200, 20))):
        (tmp_path / "staff" / person).mkdir(parents=True)
        Image.fromarray(solid(colour)).save(tmp_path / "staff" / person / "1.png")
    (tmp_path / "staff" / "green" / "evil.jpg").write_bytes(b"DDS |" + bytes(188))
    args = ["enroll-dir", str(tmp_path / "staff"), "--gallery", str(tmp_path / "g.sqlite"), "--json"]
    run = CliRunner().invoke(main, [*args, "--model", "mean-colour", "--detector", "flat"])
    assert run.exit_code == 1
    report = json.loads(run.stdout)
    assert report["enrolled"] == {"red": 1} and "InvalidImageError" not in report["failed"]["green"]
    assert "not an image in a supported format" in report["failed"]["green"]


def test_opening_is_tried_again_when_sqlite_answers_locked_at_once(tmp_path, monkeypatch):
    """SQLite returns "locked" without waiting where waiting could deadlock (several processes creating one
    file, one of them switching it to WAL): opening is idempotent, so the store opens again."""
    from facegate.errors import GalleryUnavailableError
    from facegate.gallery.store import GalleryStore

    real, calls = GalleryStore._open, []

    def flaky(self, *args):
        calls.append(1)
        if len(calls) <= 2:
            self._db = sqlite3.connect(":memory:")
            raise GalleryUnavailableError("cannot use the gallery: database is locked (another process ...)")
        return real(self, *args)

    monkeypatch.setattr(GalleryStore, "_open", flaky)
    store = GalleryStore(tmp_path / "g.sqlite", "mean-colour", 3)
    assert len(calls) == 3 and store.people() == []
    store.close()
