"""The service's liveness by challenge: a challenge for a claimed name, the frames that answer it (once,
before it expires), the audit log; with Yale's real photos and the real face model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'facegate[serve]'")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from facegate.gallery import Gallery
from facegate.gallery.keys import create_key
from facegate.live.liveness import CHALLENGES
from facegate.service.app import create_app
from facegate.service.settings import ServeSettings

from .conftest import data_dir

pytestmark = pytest.mark.data


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def door(tmp_path_factory):
    from facegate.datasets.liveness import yale_subjects

    subject = yale_subjects(data_dir("yale"))[0]
    path = str(tmp_path_factory.mktemp("liveness") / "office.sqlite")
    with Gallery(path) as gallery:
        gallery.enroll(subject.name, subject.enrol)
        with gallery.store.transaction() as db:
            _, admin = create_key(db, "admin", "ops")
            _, key = create_key(db, "door", "front door")
    with TestClient(create_app(ServeSettings(gallery=path, warm_up=False))) as client:
        yield client, subject, {"X-API-Key": key}, {"X-API-Key": admin}


def answer(client, headers, challenge_id: str, frames, times: str | None = None):
    files = [("frame", (f"{i}.png", png(f), "image/png")) for i, f in enumerate(frames)]
    data = {"times": times} if times is not None else {}
    return client.post(f"/v1/liveness/challenges/{challenge_id}/frames", headers=headers, files=files, data=data)


def test_a_challenge_is_answered_once_and_the_decision_is_audited(door):
    client, subject, key, admin = door
    issued = client.post("/v1/liveness/challenges", headers=key, json={"name": subject.name, "challenge": "blink"})
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert (body["challenge"], body["prompt"], body["name"]) == ("blink", "Blink", subject.name)
    assert body["expires_at"] > "2000"
    times = ",".join(f"{i / 8:.3f}" for i in range(len(subject.frames)))
    first = answer(client, key, body["id"], subject.frames, times)
    assert first.status_code == 200, first.text
    result = first.json()
    assert (result["accepted"], result["live"], result["verified"], result["reason"]) == (True, True, True, "accepted")
    assert result["measures"][2]["time"] == 0.25 and result["locked"] is False
    again = answer(client, key, body["id"], subject.frames)
    assert again.status_code == 409 and again.json()["error"] == "ChallengeUsed"

    # a random challenge, answered with one photo held still: not live
    issued = client.post("/v1/liveness/challenges", headers=key, data={"name": subject.name}).json()
    assert issued["challenge"] in CHALLENGES.names()
    still = answer(client, key, issued["id"], [subject.photo] * 5).json()
    assert (still["accepted"], still["live"], still["verified"]) == (False, False, True)
    assert still["reason"] in ("no_blink", "no_turn")

    events = client.get("/v1/events", headers=admin, params={"kind": "liveness"}).json()["events"]
    outcomes = [(e["outcome"], e["detail"]["reason"]) for e in events]
    assert outcomes == [("refused", still["reason"]), ("accepted", "accepted")]
    assert events[1]["operating_point"] == "FMR 0.001" and events[1]["name"] == subject.name


def test_bad_challenges_and_callers_are_refused(door, monkeypatch):
    client, subject, key, _ = door
    assert client.post("/v1/liveness/challenges", json={"name": subject.name}).status_code == 401
    assert client.post("/v1/liveness/challenges", headers=key, json={"name": "nobody"}).status_code == 404
    wrong = client.post("/v1/liveness/challenges", headers=key, json={"name": subject.name, "challenge": "smile"})
    assert wrong.status_code == 422
    issued = client.post("/v1/liveness/challenges", headers=key, json={"name": subject.name}).json()
    forged = issued["id"].split(".")[0] + ".not-the-nonce"
    assert answer(client, key, forged, [subject.photo] * 3).status_code == 404
    assert answer(client, key, "12345", [subject.photo] * 3).status_code == 404
    assert answer(client, key, issued["id"], [subject.photo] * 2).status_code == 422  # too few frames
    bad_times = answer(client, key, issued["id"], [subject.photo] * 3, "0,0.1")
    assert bad_times.status_code == 422
    monkeypatch.setattr("facegate.service.liveness.CHALLENGE_TTL_S", -1.0)
    expired = client.post("/v1/liveness/challenges", headers=key, json={"name": subject.name}).json()
    gone = answer(client, key, expired["id"], [subject.photo] * 3)
    assert gone.status_code == 410 and gone.json()["error"] == "ChallengeExpired"
