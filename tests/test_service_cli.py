"""`facegate serve` as a command: it refuses to listen beyond this machine without a key, and with several
worker processes it answers door checks and sums every worker's metrics."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'facegate[serve]'")
httpx = pytest.importorskip("httpx")

from facegate.service.settings import ServeSettings, is_loopback  # noqa: E402

from .conftest import data_dir  # noqa: E402

FACEGATE = [str(Path(sys.executable).with_name("facegate"))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*FACEGATE, *args], capture_output=True, text=True, timeout=timeout)


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.10", "::", "example.org"))


def test_settings_travel_to_worker_processes_as_json():
    settings = ServeSettings(gallery="/tmp/g.sqlite", workers=2, keep_photos_days=3)
    assert ServeSettings.from_json(settings.to_json()) == settings


def test_serve_options_hand_one_settings_object_with_the_lockout_in_seconds():
    import click
    from click.testing import CliRunner

    from facegate.cli.serve import serve_options
    from facegate.gallery.lockout import LockoutPolicy

    seen = []

    @click.command()
    @serve_options
    def probe(settings):
        seen.append(settings)

    args = ["--port", "9001", "--workers", "3", "--keep-photos", "2", "--fpir", "0.05", "--lockout-attempts", "5"]
    done = CliRunner().invoke(probe, [*args, "--lockout-window", "2", "--lockout-minutes", "1.5"])
    assert done.exit_code == 0, done.output
    assert seen == [
        ServeSettings(
            gallery="", port=9001, workers=3, keep_photos_days=2.0, fpir=0.05, lockout=LockoutPolicy(5, 120.0, 90.0)
        )
    ]
    CliRunner().invoke(probe, [])
    assert seen[1] == ServeSettings(gallery="")  # every default is ServeSettings' and LockoutPolicy's own


def test_serve_refuses_another_address_without_a_key(tmp_path):
    gallery = tmp_path / "office.sqlite"
    done = _run("serve", "--gallery", str(gallery), "--host", "0.0.0.0", "--port", str(_free_port()))
    assert done.returncode == 2
    assert "refusing to serve on 0.0.0.0 without an API key" in done.stderr
    assert "facegate keys create --role admin" in done.stderr


@pytest.mark.data
@pytest.mark.slow
def test_serve_with_two_workers_answers_and_counts_every_worker(tmp_path):
    photos = data_dir("happyhouse", "images")
    gallery = str(tmp_path / "office.sqlite")
    assert _run("enroll", "younes", str(photos / "younes.jpg"), "--gallery", gallery).returncode == 0
    admin = _run("keys", "create", "--role", "admin", "--gallery", gallery).stdout.strip()
    door = _run("keys", "create", "--role", "door", "--name", "front door", "--gallery", gallery).stdout.strip()
    port = _free_port()
    server = subprocess.Popen(
        [*FACEGATE, "serve", "--gallery", gallery, "--port", str(port), "--workers", "2", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=url, timeout=60) as client:
            while True:
                try:
                    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {admin}"})
                    if "facegate_worker_processes 2" in metrics.text:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None and time.monotonic() < deadline, "the service did not start"
                time.sleep(0.3)
            files = {"photo": ("camera_0.jpg", (photos / "camera_0.jpg").read_bytes(), "image/jpeg")}
            for _ in range(4):
                answer = client.post("/v1/verify", data={"name": "younes"}, files=files, headers={"X-API-Key": door})
                assert answer.status_code == 200 and answer.json()["verified"] is True
            time.sleep(0.7)  # each worker writes its counts at most twice a second
            text = client.get("/metrics", headers={"X-API-Key": admin}).text
            assert 'facegate_decisions_total{kind="verify",outcome="accepted"} 4' in text
            assert 'facegate_requests_total{method="POST",route="/v1/verify",status="200"} 4' in text
        events = _run("events", "--gallery", gallery, "--kind", "verify").stdout.splitlines()
        assert len(events) == 4 and all("accepted" in line and '"front door"' in line for line in events)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.wait()
    assert server.returncode == 0, server.stdout.read() if server.stdout else ""
