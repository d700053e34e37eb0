"""The web console in headless Chromium (Debian's, driven by Playwright; `playwright install` is never run):
enter a key, enrol a person from an uploaded photo, check them at the door, see the decision and its event.

Screenshots are kept in runs/test-artifacts/console/ (under the repository)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'facegate[serve]'")

from facegate.gallery import Gallery
from facegate.gallery.keys import create_key
from facegate.service.background import BackgroundServer
from facegate.service.settings import ServeSettings

from .conftest import REPO, data_dir

pytestmark = [pytest.mark.data, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "runs" / "test-artifacts" / "console"


def chromium() -> str:
    """Debian's Chromium: installed with apt when missing and this is root (as .ci/run does), else a skip."""
    if not os.path.exists(CHROMIUM) and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, timeout=600)
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
        subprocess.run(install, env=env, check=False, timeout=900)
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing and apt-get cannot install it here (not root, or no apt-get)")
    return CHROMIUM


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    photos = data_dir("happyhouse", "images")
    path = str(tmp_path_factory.mktemp("console") / "office.sqlite")
    with Gallery(path) as gallery, gallery.store.transaction() as db:
        _, admin = create_key(db, "admin", "ops laptop")
        _, door = create_key(db, "door", "front door")
    with BackgroundServer(ServeSettings(gallery=path)) as server:
        yield server.url, admin, door, photos


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    executable = chromium()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


def test_enrol_and_check_at_the_door_from_the_console(console, browser):
    from playwright.sync_api import expect

    url, admin, _, photos = console
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url + "/")
    expect(page.locator("#whoami")).to_have_text("enter a key")

    page.fill("#api-key", admin)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#whoami")).to_have_text("admin key: everything")

    page.click("#tabs button[data-tab=people]")
    page.fill("#enrol-name", "younes")
    page.set_input_files("#enrol-photos", str(photos / "younes.jpg"))
    page.click("#enrol-submit")
    expect(page.locator("#enrol-result")).to_have_text("Enrolled younes from 1 photo.")
    row = page.locator("#people-table tbody tr[data-name=younes]")
    expect(row.locator("td").nth(1)).to_have_text("1")
    page.screenshot(path=str(ARTIFACTS / "1-enrolled.png"), full_page=True)

    page.click("#tabs button[data-tab=door]")
    page.fill("#door-name", "younes")
    page.set_input_files("#door-photo", str(photos / "camera_0.jpg"))
    page.click("#door-check")
    verdict = page.locator("#door-result")
    expect(verdict).to_have_class("verdict yes")
    expect(verdict.locator("strong")).to_have_text("It's younes, welcome in!")
    expect(verdict).to_contain_text("threshold")
    expect(verdict).to_contain_text("target FMR 0.001")
    page.screenshot(path=str(ARTIFACTS / "2-door-welcome.png"), full_page=True)

    page.click("#tabs button[data-tab=events]")
    decision = page.locator("#events-table tbody tr.outcome-accepted").first
    expect(decision).to_contain_text("verify")
    expect(decision).to_contain_text("younes")
    expect(decision).to_contain_text("ops laptop")  # who asked
    expect(decision.locator("td").nth(6)).to_have_text("FMR 0.001")
    expect(page.locator("#events-table tbody tr", has_text="enroll")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "3-event-log.png"), full_page=True)
    assert errors == []


def test_a_door_key_sees_only_the_door(console, browser):
    from playwright.sync_api import expect

    url, _, door, photos = console
    page = browser.new_page()
    page.goto(url + "/")
    page.fill("#api-key", door)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#whoami")).to_have_text("door key: door checks only")
    expect(page.locator("#tabs button[data-tab=people]")).to_be_hidden()
    page.set_input_files("#door-photo", str(photos / "camera_2.jpg"))
    page.click("#door-identify")
    expect(page.locator("#door-result strong")).to_have_text("Not in the database")  # only younes is enrolled
    page.fill("#door-name", "nobody")
    page.click("#door-check")
    expect(page.locator("#door-result")).to_contain_text("PersonNotFoundError")
    page.screenshot(path=str(ARTIFACTS / "4-door-key.png"), full_page=True)
