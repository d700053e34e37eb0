"""`facegate serve` over real HTTP: a uvicorn server on a free port of this machine, the real face model, the
Happy House photos. Every endpoint, the auth matrix, each limit, the lockout, the audit log and the metrics."""

from __future__ import annotations

import base64
import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'facegate[serve]'")
httpx = pytest.importorskip("httpx")

from facegate.gallery import Gallery  # noqa: E402
from facegate.gallery.keys import create_key, revoke_key  # noqa: E402
from facegate.service.background import BackgroundServer  # noqa: E402
from facegate.service.settings import ServeSettings  # noqa: E402

from .conftest import data_dir  # noqa: E402

pytestmark = pytest.mark.data

RESIDENTS = [
    *("andrew", "arnaud", "benoit", "bertrand", "dan", "danielle", "felix", "kevin", "kian", "sebastiano", "tian"),
    "younes",
]
#: who the README's story says each door camera shows
CAMERAS = {0: "younes", 1: "bertrand", 2: "benoit", 3: "bertrand", 4: "dan", 5: "arnaud"}


@dataclass
class Service:
    url: str
    admin: str
    door: str
    revoked: str
    photos: Path
    gallery: str

    def client(self, key: str | None = None, bearer: bool = False) -> httpx.Client:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"} if bearer else {"X-API-Key": key}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def photo(self, name: str) -> bytes:
        return (self.photos / name).read_bytes()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    photos = data_dir("happyhouse", "images")
    path = str(tmp_path_factory.mktemp("service") / "office.sqlite")
    with Gallery(path) as gallery, gallery.store.transaction() as db:
        _, admin = create_key(db, "admin", "ops")
        _, door = create_key(db, "door", "front door")
        old, revoked = create_key(db, "door", "old camera")
        revoke_key(db, old.id)
    settings = ServeSettings(gallery=path, max_upload_mb=1.0)
    with BackgroundServer(settings) as server:
        yield Service(server.url, admin, door, revoked, photos, path)


@pytest.fixture(scope="module")
def residents(service):
    """Everyone of the Happy House enrolled through POST /v1/people, and "nobody" from a photo without a face."""
    import io

    from PIL import Image

    blank = io.BytesIO()
    Image.new("RGB", (96, 96), (128, 128, 128)).save(blank, format="PNG")
    answers = {}
    with service.client(service.admin) as client:
        for name in [*RESIDENTS, "nobody"]:
            suffix = ".png" if name == "danielle" else ".jpg"
            photo = blank.getvalue() if name == "nobody" else service.photo(f"{name}{suffix}")
            files = {"photos": (f"{name}{suffix}", photo, "image/jpeg")}
            answers[name] = client.post("/v1/people", data={"name": name}, files=files)
    return answers


def _events(service, **params) -> list[dict]:
    with service.client(service.admin) as client:
        answer = client.get("/v1/events", params={"limit": 1000, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()["events"]


def _people(service) -> dict[str, int]:
    with service.client(service.admin) as client:
        return {p["name"]: p["templates"] for p in client.get("/v1/people").json()["people"]}


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG")
    return buffer.getvalue()


GREY = _jpeg(np.full((120, 120, 3), 128, np.uint8))  # an image without a face


# -- no key needed -------------------------------------------------------------------------------------------------
def test_health_docs_and_the_console_are_served_without_a_key(service):
    with service.client() as client:
        assert client.get("/health").json() == {"status": "ok", "version": "0.1.0"}
        docs = client.get("/docs")
        assert docs.status_code == 200 and "/docs-static/swagger-ui-bundle.js" in docs.text  # no CDN
        assert client.get("/docs-static/swagger-ui-bundle.js").status_code == 200
        spec = client.get("/openapi.json").json()
        assert {"/v1/verify", "/v1/identify", "/v1/compare", "/v1/people", "/v1/events", "/metrics"} <= set(
            spec["paths"]
        )
        assert {"multipart/form-data", "application/json"} <= set(
            spec["paths"]["/v1/verify"]["post"]["requestBody"]["content"]
        )
        page = client.get("/")
        assert page.status_code == 200 and "facegate console" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert client.get("/static/app.js").status_code == 200
        assert client.get("/no/such/page").json()["error"] == "NotFound"


# -- the auth matrix -----------------------------------------------------------------------------------------------
DOOR_ENDPOINTS = [("POST", "/v1/verify"), ("POST", "/v1/identify"), ("POST", "/v1/compare")]
ADMIN_ENDPOINTS = [
    ("GET", "/v1/people"),
    ("POST", "/v1/people"),
    ("POST", "/v1/people/younes/photos"),
    ("PATCH", "/v1/people/younes"),
    ("DELETE", "/v1/people/younes"),
    ("POST", "/v1/people/younes/unlock"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/1/photos/0"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("DELETE", "/v1/keys/0123abcd"),
    ("GET", "/metrics"),
]


def test_the_auth_matrix(service):
    people_before = _people(service)
    for method, path in DOOR_ENDPOINTS + ADMIN_ENDPOINTS:
        for key in (None, "fg_0123abcd_" + "A" * 43, "not-a-key", service.revoked):
            with service.client(key) as client:
                answer = client.request(method, path)
            assert answer.status_code == 401, (method, path, key, answer.text)
            assert answer.json()["error"] == "Unauthorized" and answer.headers["www-authenticate"] == "Bearer"
        with service.client(service.revoked) as client:
            assert "was revoked" in client.request(method, path).json()["detail"]
    for method, path in ADMIN_ENDPOINTS:
        with service.client(service.door) as client:
            answer = client.request(method, path)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json() == {"error": "Forbidden", "detail": "a door key may only verify, identify and compare"}
    for method, path in DOOR_ENDPOINTS:  # past the key: the request itself is what is missing
        for key in (service.door, service.admin):
            with service.client(key, bearer=key == service.door) as client:
                assert client.request(method, path).status_code == 422, (method, path)
    with service.client(service.admin, bearer=True) as client:
        assert client.get("/v1/people").status_code == 200
    assert _people(service) == people_before


# -- the Happy House door story ------------------------------------------------------------------------------------
def test_the_happy_house_door_story_over_http(service, residents):
    for name in RESIDENTS:
        assert residents[name].status_code == 201, residents[name].text
        assert residents[name].json()["templates_added"] == 1
    assert residents["nobody"].status_code == 422
    assert residents["nobody"].json()["error"] == "NoFaceError"
    assert _people(service) == {name: 1 for name in RESIDENTS}

    with service.client(service.door) as door:
        files = {"photo": ("camera_0.jpg", service.photo("camera_0.jpg"), "image/jpeg")}
        welcome = door.post("/v1/verify", data={"name": "younes"}, files=files).json()
        assert welcome["verified"] is True and welcome["identity"] == "younes"
        assert welcome["distance"] == pytest.approx(0.20, abs=0.03) and welcome["distance"] <= welcome["threshold"]
        assert welcome["target_fmr"] == 0.001 and "FMR 0.001" in welcome["threshold_source"]
        assert welcome["locked"] is False
        files = {"photo": ("camera_2.jpg", service.photo("camera_2.jpg"), "image/jpeg")}
        go_away = door.post("/v1/verify", data={"name": "kian"}, files=files).json()
        assert go_away["verified"] is False and go_away["distance"] > go_away["threshold"]
        for camera, expected in CAMERAS.items():
            files = {"photo": (f"camera_{camera}.jpg", service.photo(f"camera_{camera}.jpg"), "image/jpeg")}
            who = door.post("/v1/identify", files=files).json()
            assert who["identity"] == expected, (camera, who)
            assert who["target_fpir"] == 0.01 and who["enrolled_people"] == len(RESIDENTS)

    verify_events = _events(service, kind="verify")
    assert [(e["name"], e["outcome"]) for e in verify_events[:2]] == [("kian", "refused"), ("younes", "accepted")]
    younes = verify_events[1]
    assert younes["key_label"] == "front door" and younes["client"] == "127.0.0.1"
    assert younes["endpoint"] == "POST /v1/verify" and younes["operating_point"] == "FMR 0.001"
    assert younes["distance"] == welcome["distance"] and younes["threshold"] == welcome["threshold"]
    assert len(younes["photo_sha256"]) == 64 and younes["photos_kept"] == 0
    enrolments = _events(service, kind="enroll")
    assert sorted(e["name"] for e in enrolments) == RESIDENTS  # nobody failed: no event

    from facegate.cli import main

    printed = CliRunner().invoke(main, ["events", "--gallery", service.gallery, "--person", "younes"]).output
    lines = [line for line in printed.splitlines() if " verify " in line]
    assert (
        "accepted" in lines[0]
        and "distance 0.20" in lines[0]
        and '[POST /v1/verify key "front door" 127.0.0.1]' in lines[0]
    )


def test_photos_can_come_as_base64_json_and_compare_needs_no_gallery(service, residents):
    younes = base64.b64encode(service.photo("younes.jpg")).decode()
    camera = "data:image/jpeg;base64," + base64.b64encode(service.photo("camera_0.jpg")).decode()
    kian = base64.urlsafe_b64encode(service.photo("kian.jpg")).decode()
    with service.client(service.door) as door:
        answer = door.post("/v1/verify", json={"name": "younes", "photo": camera})
        assert answer.status_code == 200 and answer.json()["verified"] is True
        same = door.post("/v1/compare", json={"img1": camera, "img2": younes}).json()
        assert same["verified"] is True and same["target_fmr"] == 0.001 and same["faces"] == {"img1": 1, "img2": 1}
        files = [("img1", ("a.jpg", service.photo("camera_0.jpg"))), ("img2", ("b.jpg", service.photo("kian.jpg")))]
        different = door.post("/v1/compare", files=files).json()
        assert different["verified"] is False
        top = door.post("/v1/identify", json={"photo": kian, "top_k": 2}).json()
        assert top["identity"] == "kian" and len(top["candidates"]) == 2
        burst = door.post("/v1/identify", json={"photos": [camera, camera]}).json()  # frames of one face
        assert burst["identity"] == "younes"
    compares = _events(service, kind="compare")
    assert [e["outcome"] for e in compares[:2]] == ["different", "same"]
    assert len(compares[0]["photo_sha256"].split(",")) == 2


# -- limits and bad input ------------------------------------------------------------------------------------------
def test_limits_and_bad_uploads_are_4xx_and_never_change_the_gallery(service, residents):
    people, events = _people(service), len(_events(service))
    younes = service.photo("younes.jpg")
    bomb = io.BytesIO()
    Image.new("1", (8200, 8000)).save(bomb, format="PNG")  # 65.6 megapixels in a few kB
    cases = [
        # (method, path, request arguments, status, error)
        (
            "POST",
            "/v1/people",
            {"data": {"name": "big"}, "files": {"photos": ("big.jpg", b"\xff" * 1_300_000)}},
            413,
            "UploadTooLargeError",
        ),
        (
            "POST",
            "/v1/verify",
            {"data": {"name": "younes"}, "files": {"photo": ("x.txt", b"hello, not a photo")}},
            422,
            "InvalidImageError",
        ),
        (
            "POST",
            "/v1/verify",
            {"data": {"name": "younes"}, "files": {"photo": ("t.jpg", younes[: len(younes) // 2])}},
            422,
            "InvalidImageError",
        ),
        (
            "POST",
            "/v1/verify",
            {"data": {"name": "younes"}, "files": {"photo": ("e.jpg", b"")}},
            422,
            "InvalidImageError",
        ),
        ("POST", "/v1/identify", {"files": {"photo": ("bomb.png", bomb.getvalue())}}, 422, "ImageTooLargeError"),
        (
            "POST",
            "/v1/verify",
            {"data": {"name": "younes"}, "files": {"photo": ("grey.jpg", GREY)}},
            422,
            "NoFaceError",
        ),
        ("POST", "/v1/identify", {"files": {"photo": ("grey.jpg", GREY)}}, 422, "NoFaceError"),
        (
            "POST",
            "/v1/verify",
            {"data": {"name": "nobody"}, "files": {"photo": ("y.jpg", younes)}},
            404,
            "PersonNotFoundError",
        ),
        (
            "POST",
            "/v1/verify",
            {"data": {"name": " younes"}, "files": {"photo": ("y.jpg", younes)}},
            422,
            "InvalidNameError",
        ),
        ("POST", "/v1/verify", {"files": {"photo": ("y.jpg", younes)}}, 422, "ValidationError"),
        ("POST", "/v1/verify", {"json": {"name": "younes", "photo": "%%% not base64 %%%"}}, 422, "InvalidImageError"),
        ("POST", "/v1/verify", {"json": {"name": "younes", "photo": "/etc/passwd"}}, 422, "InvalidImageError"),
        (
            "POST",
            "/v1/verify",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
            "ValidationError",
        ),
        ("POST", "/v1/verify", {"json": ["younes"]}, 422, "ValidationError"),
        (
            "POST",
            "/v1/verify",
            {"content": b"younes", "headers": {"content-type": "text/plain"}},
            415,
            "UnsupportedMediaType",
        ),
        (
            "POST",
            "/v1/identify",
            {"data": {"top_k": "many"}, "files": {"photo": ("y.jpg", younes)}},
            422,
            "ValidationError",
        ),
        ("POST", "/v1/compare", {"files": {"img1": ("y.jpg", younes)}}, 422, "ValidationError"),
        (
            "POST",
            "/v1/people",
            {"data": {"name": "younes"}, "files": {"photos": ("y.jpg", younes)}},
            409,
            "DuplicatePersonError",
        ),
        ("POST", "/v1/people", {"data": {"name": "newbie"}}, 422, "ValidationError"),
        ("POST", "/v1/people/younes/photos", {"files": {"photos": ("y.jpg", younes)}}, 409, "DuplicateTemplateError"),
        ("POST", "/v1/people/nobody/photos", {"files": {"photos": ("y.jpg", younes)}}, 404, "PersonNotFoundError"),
        ("PATCH", "/v1/people/younes", {"json": {"name": "kian"}}, 409, "DuplicatePersonError"),
        ("PATCH", "/v1/people/nobody", {"json": {"name": "somebody"}}, 404, "PersonNotFoundError"),
        ("PATCH", "/v1/people/younes", {"json": {"nom": "x"}}, 422, "ValidationError"),
        ("DELETE", "/v1/people/nobody", {}, 404, "PersonNotFoundError"),
        ("POST", "/v1/people/nobody/unlock", {}, 404, "PersonNotFoundError"),
        ("GET", "/v1/events", {"params": {"since": "last tuesday"}}, 422, "GalleryError"),
        ("GET", "/v1/events", {"params": {"limit": 0}}, 422, "ValidationError"),
        ("GET", "/v1/events/1/photos/0", {}, 404, "NotFound"),
        ("DELETE", "/v1/keys/0123abcd", {}, 404, "ApiKeyNotFoundError"),
        ("POST", "/v1/keys", {"json": {"role": "root"}}, 422, "ValidationError"),
        ("PUT", "/v1/people", {}, 405, "MethodNotAllowed"),
    ]
    with service.client(service.admin) as client:
        for method, path, arguments, status, error in cases:
            answer = client.request(method, path, **arguments)
            assert (answer.status_code, answer.json()["error"]) == (status, error), (method, path, answer.text)
            assert answer.json()["detail"]

        # a streamed body (no Content-Length) is cut at the limit too
        def chunks():
            yield b'--b\r\nContent-Disposition: form-data; name="photo"; filename="big.jpg"\r\n\r\n'
            yield from (b"\xff" * 65536 for _ in range(40))
            yield b"\r\n--b--\r\n"

        streamed = client.post(
            "/v1/identify", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
        assert "content-length" not in streamed.request.headers
        assert (streamed.status_code, streamed.json()["error"]) == (413, "UploadTooLargeError")
        assert client.get("/health").status_code == 200  # the connection and the server are fine
    assert _people(service) == people
    assert len(_events(service)) == events


def test_enrolment_failing_on_one_bad_photo_leaves_people_and_events_unchanged(service, residents):
    people, events = _people(service), _events(service)
    good = ("benoit.jpg", service.photo("benoit.jpg"), "image/jpeg")
    with service.client(service.admin) as client:
        for bad in [("notes.txt", b"not a photo", "text/plain"), ("grey.jpg", GREY, "image/jpeg")]:
            answer = client.post("/v1/people", data={"name": "newbie"}, files=[("photos", good), ("photos", bad)])
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"] in ("InvalidImageError", "NoFaceError")
            answer = client.post("/v1/people/younes/photos", files=[("photos", good), ("photos", bad)])
            assert answer.status_code == 422
    assert _people(service) == people
    assert _events(service) == events


# -- lockout -------------------------------------------------------------------------------------------------------
def test_the_lockout_sequence(service, residents):
    tian = {"photo": ("tian.jpg", service.photo("tian.jpg"), "image/jpeg")}
    impostor = {"photo": ("camera_0.jpg", service.photo("camera_0.jpg"), "image/jpeg")}  # younes
    with service.client(service.door) as door, service.client(service.admin) as admin:
        assert door.post("/v1/verify", data={"name": "tian"}, files=tian).json()["verified"] is True
        answers = [door.post("/v1/verify", data={"name": "tian"}, files=impostor) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [a.json()["verified"] for a in answers] == [False, False, False]
        assert [a.json()["locked"] for a in answers] == [False, False, True]  # the third refusal locks the name
        until = answers[2].json()["locked_until"]

        locked = door.post("/v1/verify", data={"name": "tian"}, files=tian)  # even tian's own face: not matched
        assert locked.status_code == 423
        body = locked.json()
        assert body["error"] == "LockedOutError" and body["verified"] is False and body["locked"] is True
        assert body["locked_until"] == until and "distance" not in body
        assert door.post("/v1/verify", data={"name": "younes"}, files=impostor).json()["verified"] is True
        assert {p["name"]: p["locked_until"] for p in admin.get("/v1/people").json()["people"]}["tian"] == until
        assert "facegate_locked_names 1" in admin.get("/metrics").text

        assert door.post("/v1/people/tian/unlock").status_code == 403
        assert admin.post("/v1/people/tian/unlock").json() == {"name": "tian", "unlocked": True, "locked": False}
        assert admin.post("/v1/people/tian/unlock").json()["unlocked"] is False
        assert door.post("/v1/verify", data={"name": "tian"}, files=tian).json()["verified"] is True
    log = [(e["kind"], e["outcome"]) for e in reversed(_events(service, person="tian")) if e["kind"] != "enroll"]
    assert log == [
        ("verify", "accepted"),
        ("verify", "refused"),
        ("verify", "refused"),
        ("verify", "refused"),
        ("lock", "locked"),
        ("verify", "locked"),
        ("unlock", "unlocked"),
        ("verify", "accepted"),
    ]
    lock = _events(service, person="tian", kind="lock")[0]
    assert lock["detail"]["until"] == until and lock["detail"]["refusals"] == 3 and lock["key_label"] == "front door"


# -- people, the log, keys, metrics --------------------------------------------------------------------------------
def test_people_can_be_changed_and_every_change_is_logged(service, residents):
    with service.client(service.admin) as client:
        files = {"photos": ("benoit.jpg", service.photo("benoit.jpg"), "image/jpeg")}
        assert client.post("/v1/people", data={"name": "visitor"}, files=files).status_code == 201
        files = {"photos": ("camera_2.jpg", service.photo("camera_2.jpg"), "image/jpeg")}
        added = client.post("/v1/people/visitor/photos", files=files)
        assert added.status_code == 200 and added.json()["templates_added"] == 1
        assert client.patch("/v1/people/visitor", json={"name": "guest"}).json() == {"old": "visitor", "new": "guest"}
        assert _people(service)["guest"] == 2
        assert client.delete("/v1/people/guest").json() == {"name": "guest", "templates_removed": 2}
    assert "guest" not in _people(service)
    changes = [e for e in _events(service) if e["name"] in ("visitor", "guest")]
    assert [(e["kind"], e["name"]) for e in reversed(changes)] == [
        ("enroll", "visitor"),
        ("add_photos", "visitor"),
        ("rename", "visitor"),
        ("remove", "guest"),
    ]
    assert {e["key_label"] for e in changes} == {"ops"}
    assert changes[1]["detail"] == {"new_name": "guest"}


def test_the_event_log_filters_and_pages(service, residents):
    everything = _events(service)
    with service.client(service.admin) as client:
        first = client.get("/v1/events", params={"limit": 2}).json()
        assert [e["id"] for e in first["events"]] == [e["id"] for e in everything[:2]]
        second = client.get("/v1/events", params={"limit": 2, "before": first["next_before"]}).json()
        assert [e["id"] for e in second["events"]] == [e["id"] for e in everything[2:4]]
        refused = client.get("/v1/events", params={"outcome": "refused", "since": "1h"}).json()["events"]
        assert refused and {e["outcome"] for e in refused} == {"refused"}
        younes = client.get("/v1/events", params={"person": "younes", "kind": "verify"}).json()["events"]
        assert younes and {(e["name"], e["kind"]) for e in younes} == {("younes", "verify")}
        assert client.get("/v1/events", params={"since": "2999-01-01"}).json() == {"events": [], "next_before": None}
        assert client.get("/v1/events", params={"until": "2000-01-01"}).json()["events"] == []


def test_keys_can_be_managed_over_the_api(service):
    with service.client(service.admin) as admin:
        made = admin.post("/v1/keys", json={"role": "door", "name": "side door"})
        assert made.status_code == 201
        key = made.json()["key"]
        listed = admin.get("/v1/keys").json()["keys"]
        assert {"side door", "ops", "front door", "old camera"} <= {k["label"] for k in listed}
        assert all("key" not in k and "hash" not in k for k in listed)
        with service.client(key) as side:
            assert side.post("/v1/identify").status_code == 422  # accepted as a key
            assert side.get("/v1/people").status_code == 403
            assert admin.delete(f"/v1/keys/{made.json()['id']}").json()["active"] is False
            assert side.post("/v1/identify").status_code == 401
        assert admin.delete(f"/v1/keys/{made.json()['id']}").status_code == 422  # already revoked
    kinds = [(e["kind"], e["detail"]["label"]) for e in _events(service) if e["kind"].startswith("key_")][:2]
    assert kinds == [("key_revoked", "side door"), ("key_created", "side door")]


def test_metrics_count_requests_latencies_and_decisions(service, residents):
    with service.client(service.admin, bearer=True) as client:  # as Prometheus sends it
        answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert "# TYPE facegate_requests_total counter" in text
    assert 'facegate_requests_total{method="POST",route="/v1/verify",status="200"}' in text
    assert 'facegate_requests_total{method="POST",route="unmatched",status="413"}' in text  # refused before routing
    assert 'facegate_request_duration_seconds_bucket{route="/v1/identify",le="+Inf"}' in text
    assert 'facegate_decisions_total{kind="verify",outcome="accepted"}' in text
    assert 'facegate_decisions_total{kind="identify",outcome="identified"}' in text
    assert f"facegate_gallery_people {len(RESIDENTS)}" in text


def test_an_unexpected_error_is_a_500_never_a_no(service, residents, monkeypatch):
    from facegate.service import operations

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    events = len(_events(service))
    monkeypatch.setattr(operations, "door_check", broken)
    with service.client(service.door) as door:
        files = {"photo": ("camera_0.jpg", service.photo("camera_0.jpg"), "image/jpeg")}
        answer = door.post("/v1/verify", data={"name": "younes"}, files=files)
    assert answer.status_code == 500
    assert answer.json() == {
        "error": "InternalError",
        "detail": "an unexpected error; it was logged (this is a bug, not a decision)",
    }
    assert len(_events(service)) == events


def test_requests_are_served_concurrently_while_faces_are_embedded(service, residents):
    results, errors = [], []

    def door_check():
        try:
            with service.client(service.door) as door:
                files = {"photo": ("camera_0.jpg", service.photo("camera_0.jpg"), "image/jpeg")}
                results.append(door.post("/v1/verify", data={"name": "younes"}, files=files).json()["verified"])
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=door_check) for _ in range(8)]
    for thread in threads:
        thread.start()
    with service.client() as client:
        start = time.perf_counter()
        assert client.get("/health").status_code == 200
        health = time.perf_counter() - start
    for thread in threads:
        thread.join()
    assert errors == [] and results == [True] * 8
    assert health < 5  # the event loop was never held by the embedding


def test_photos_are_kept_only_when_the_operator_opts_in(service, tmp_path):
    path = str(tmp_path / "kept.sqlite")
    with Gallery(path) as gallery:
        gallery.enroll("younes", [service.photo("younes.jpg")])
        with gallery.store.transaction() as db:
            _, key = create_key(db, "admin")
    camera = service.photo("camera_0.jpg")
    settings = ServeSettings(gallery=path, keep_photos_days=7, warm_up=False)
    with BackgroundServer(settings) as server, httpx.Client(base_url=server.url, headers={"X-API-Key": key}) as client:
        answer = client.post("/v1/verify", data={"name": "younes"}, files={"photo": ("c.jpg", camera)}, timeout=120)
        assert answer.json()["verified"] is True
        event = client.get("/v1/events", params={"kind": "verify"}).json()["events"][0]
        assert event["photos_kept"] == 1
        photo = client.get(f"/v1/events/{event['id']}/photos/0")
        assert photo.status_code == 200 and photo.content == camera
        assert photo.headers["content-type"] == "image/jpeg"
    with service.client(service.admin) as client:  # the main service keeps none
        event = client.get("/v1/events", params={"kind": "verify"}).json()["events"][0]
        assert event["photos_kept"] == 0
        assert client.get(f"/v1/events/{event['id']}/photos/0").status_code == 404
