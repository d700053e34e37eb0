"""The web console's live check in headless Chromium, with a fake webcam playing a Yale subject's blink
(a Y4M file looped by Chromium's fake capture device): the console asks the service for a challenge, shows
it, films for a few seconds and posts the frames; the verdict and its event follow.

The blink is the subject's ``normal`` photo with, for a few frames, the eyes of their ``sleepy`` one
pasted in: the rest of the face holds still, as a real blink's does. Playing the two photos themselves
made a flaky test: the sleepy photo's jaw and nose sit 0.063 eye distances apart from the normal one's
after Chromium's colour conversion (over ``BLINK_STILL``), so the check passed only when the capture
happened to start on a sleepy frame (and then judged the blink against it)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'facegate[serve]'")

from facegate.gallery import Gallery
from facegate.gallery.keys import create_key
from facegate.live.head_pose import landmarks_68
from facegate.pipeline import detect_faces
from facegate.service.background import BackgroundServer
from facegate.service.settings import ServeSettings

from .conftest import data_dir
from .test_service_browser import ARTIFACTS, chromium

pytestmark = [pytest.mark.data, pytest.mark.slow]


def webcam_file(path, frames: list[np.ndarray], fps: int = 10) -> str:
    """A 640x480 4:2:0 Y4M video of RGB ``frames`` (each scaled onto a grey canvas)."""
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W640 H480 F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            canvas = np.full((480, 640, 3), 128, np.uint8)
            scale = min(600 / rgb.shape[1], 460 / rgb.shape[0])
            small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            y, x = (480 - small.shape[0]) // 2, (640 - small.shape[1]) // 2
            canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
            out.write(b"FRAME\n" + cv2.cvtColor(canvas, cv2.COLOR_RGB2YUV_I420).tobytes())
    return str(path)


def eyes_of(points: np.ndarray) -> list[np.ndarray]:
    return [points[36:42], points[42:48]]


def shut_eyes(normal: np.ndarray, sleepy: np.ndarray) -> np.ndarray:
    """``normal`` with the eyes of ``sleepy`` (a photo of the same sitting): ``sleepy`` is moved onto
    ``normal`` by the eyes' landmarks and its eyes pasted in through feathered ellipses."""
    found = []
    for photo in (normal, sleepy):
        face = detect_faces(photo, "hog")[0]
        found.append(landmarks_68(photo, (face.x, face.y, face.w, face.h)).astype(np.float32))
    to_normal, _ = cv2.estimateAffinePartial2D(np.vstack(eyes_of(found[1])), np.vstack(eyes_of(found[0])))
    height, width = normal.shape[:2]
    moved = cv2.warpAffine(sleepy, to_normal, (width, height), borderMode=cv2.BORDER_REPLICATE)
    mask = np.zeros((height, width), np.float32)
    for eye in eyes_of(found[0]):
        (x, y), span = eye.mean(axis=0), float(np.ptp(eye[:, 0]))
        cv2.ellipse(mask, (round(x), round(y)), (round(0.9 * span), round(0.55 * span)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 3)[..., None]
    return (normal * (1 - mask) + moved * mask).round().astype(np.uint8)


@pytest.fixture(scope="module")
def door(tmp_path_factory):
    from facegate.datasets.liveness import BLINK_FRAMES, yale_subjects

    subject = yale_subjects(data_dir("yale"), [1])[0]
    folder = tmp_path_factory.mktemp("live-console")
    path = str(folder / "office.sqlite")
    with Gallery(path) as gallery:
        gallery.enroll(subject.name, subject.enrol)
        with gallery.store.transaction() as db:
            _, key = create_key(db, "door", "front door")
    # a blink every 1.2 s: eyes open for 1 s, half shut for 0.2 s
    normal = subject.photo
    sleepy = shut_eyes(normal, subject.frames[BLINK_FRAMES.index("sleepy")])
    video = webcam_file(folder / "blink.y4m", ([normal] * 10 + [sleepy] * 2) * 4)
    with BackgroundServer(ServeSettings(gallery=path)) as server:
        yield server.url, key, subject.name, video


def test_a_live_check_from_the_consoles_webcam(door):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    from playwright.sync_api import expect

    url, key, name, video = door
    args = [
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=args)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            asked: list[dict] = []

            def ask_for_a_blink(route):  # the service picks at random; this fake webcam can only blink
                body = {**json.loads(route.request.post_data or "{}"), "challenge": "blink"}
                asked.append(body)
                route.continue_(post_data=json.dumps(body))

            page.route("**/v1/liveness/challenges", ask_for_a_blink)
            answers: list[dict] = []  # the service's answers, kept so that a failure shows what it measured
            page.on(
                "response",
                lambda r: (
                    answers.append({"url": r.url, "status": r.status, "body": r.text()})
                    if "/v1/liveness/" in r.url and r.request.method == "POST"
                    else None
                ),
            )
            page.goto(url + "/")
            page.fill("#api-key", key)
            page.click("#key-form button[type=submit]")
            expect(page.locator("#whoami")).to_have_text("door key: door checks only")
            page.fill("#door-name", name)
            page.click("#door-live")
            expect(page.locator("#camera-prompt")).to_have_text("Blink (4 s)", timeout=15_000)
            page.screenshot(path=str(ARTIFACTS / "4-live-check-prompt.png"))
            verdict = page.locator("#door-result")
            try:
                expect(verdict).to_have_class("verdict yes", timeout=60_000)
            finally:
                (ARTIFACTS / "live-check-answers.json").write_text(json.dumps(answers, indent=1))
            expect(verdict.locator("strong")).to_have_text(f"It's {name}, live: welcome in!")
            expect(verdict).to_contain_text("both eyes closed and opened again")
            page.screenshot(path=str(ARTIFACTS / "5-live-check-welcome.png"), full_page=True)
            assert asked == [{"name": name, "challenge": "blink"}]
            assert errors == []
        finally:
            browser.close()
