"""The service's core parts, without HTTP: the audit log written with each change, API keys, lockout,
the schema upgrade, and the commands that read them (`facegate keys`, `events`, `unlock`)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from click.testing import CliRunner

from facegate.errors import ApiKeyNotFoundError, DuplicatePersonError, GalleryError, NoFaceError
from facegate.gallery import Gallery
from facegate.gallery.audit import Event, EventQuery, insert_event, iso, parse_time, purge_photos, query_events
from facegate.gallery.keys import check_key, create_key, list_keys, revoke_key
from facegate.gallery.lockout import LockoutPolicy, lock_if_due, lock_state, locked_names, refusals_in_a_row, unlock
from facegate.gallery.store import SCHEMA_VERSION, GalleryStore

from .conftest import solid

RED, GREEN, BLUE = solid((200, 20, 20)), solid((20, 200, 20)), solid((20, 20, 200))
BLACK = solid((0, 0, 0))  # the stand-in detector finds no face in it


def _events(gallery: Gallery, **filters) -> list[Event]:
    with gallery.store.reading() as db:
        return query_events(db, EventQuery(**filters, limit=1000))[0]


def _count(path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


# -- the core does not need the service's packages ---------------------------------------------------------
def test_the_core_imports_no_web_framework():
    code = (
        "import sys, facegate, facegate.gallery, facegate.pipeline, facegate.gallery.keys, facegate.gallery.lockout, "
        "facegate.cli; bad = [m for m in ('fastapi', 'uvicorn', 'starlette', 'multipart') if m in sys.modules]; "
        "print(', '.join(bad)); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"imported by the core: {done.stdout.strip()} {done.stderr.strip()}"


# -- the audit log: each change with its event, in one transaction -----------------------------------------
def test_every_change_to_people_is_an_event_with_who_asked(fake_gallery, monkeypatch):
    from facegate.gallery import audit

    monkeypatch.setattr(audit, "_default_source", Event(endpoint="library"))  # a CLI run in this process sets its own
    who = Event(endpoint="POST /v1/people", key_label="ops", client="10.0.0.7")
    fake_gallery.enroll("red", [RED], event=who)
    fake_gallery.add_photos("red", [solid((201, 20, 20))], event=who)
    fake_gallery.rename("red", "rouge", event=who)
    fake_gallery.enroll("green", [GREEN])  # no event given: the process's default source
    fake_gallery.remove("rouge", event=who)
    events = list(reversed(_events(fake_gallery)))
    assert [(e.kind, e.name, e.outcome) for e in events] == [
        ("enroll", "red", "done"),
        ("add_photos", "red", "done"),
        ("rename", "red", "done"),
        ("enroll", "green", "done"),
        ("remove", "rouge", "done"),
    ]
    assert {(e.key_label, e.client) for e in events if e.name != "green"} == {("ops", "10.0.0.7")}
    assert events[3].endpoint == "library"
    assert events[0].photo_sha256 and len(events[0].photo_sha256) == 64
    assert events[2].detail == {"new_name": "rouge"}
    assert events[4].detail == {"templates_removed": 2}
    assert all(e.time.endswith("+00:00") for e in events)


def test_a_failed_enrolment_leaves_people_and_events_unchanged(fake_gallery):
    fake_gallery.enroll("red", [RED])
    before = (_count(fake_gallery.path, "people"), _count(fake_gallery.path, "events"))
    with pytest.raises(NoFaceError):
        fake_gallery.enroll("blue", [BLUE, BLACK])
    with pytest.raises(DuplicatePersonError):
        fake_gallery.enroll("red", [GREEN])
    assert (_count(fake_gallery.path, "people"), _count(fake_gallery.path, "events")) == before


def test_a_change_whose_event_cannot_be_written_is_not_made(fake_gallery):
    with pytest.raises(GalleryError, match="needs a kind and an outcome"), fake_gallery.store.transaction() as db:
        db.execute("INSERT INTO people (name, created_at) VALUES ('ghost', 'now')")
        insert_event(db, Event())
    assert [p.name for p in fake_gallery.people()] == []


def test_appending_events_from_another_process_does_not_rebuild_the_index(fake_gallery, monkeypatch):
    fake_gallery.enroll("red", [RED])
    reloads = []
    original = Gallery._reload
    monkeypatch.setattr(Gallery, "_reload", lambda self: (reloads.append(self is fake_gallery), original(self))[1])
    other = GalleryStore.open_existing(fake_gallery.path)
    other.record(Event(kind="verify", outcome="refused", name="red"))
    assert fake_gallery.identify(RED).identity == "red"
    assert reloads == []
    with Gallery(fake_gallery.path, "mean-colour", "flat", threshold=0.1) as writer:
        writer.enroll("green", [GREEN])
    assert fake_gallery.identify(GREEN).identity == "green"
    assert reloads.count(True) == 1
    other.close()


def test_kept_photos_expire(fake_gallery):
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with fake_gallery.store.transaction() as db:
        insert_event(db, Event(kind="verify", outcome="accepted", name="x"), [b"photo"], keep_days=1, moment=moment)
        insert_event(db, Event(kind="verify", outcome="accepted", name="y"), [b"photo"], keep_days=0, moment=moment)
    assert _count(fake_gallery.path, "kept_photos") == 1
    with fake_gallery.store.transaction() as db:
        assert purge_photos(db, moment + timedelta(hours=23)) == 0
        assert purge_photos(db, moment + timedelta(days=2)) == 1
    assert _count(fake_gallery.path, "events") == 2  # the log itself stays


def test_event_queries_filter_and_page(fake_gallery):
    for name in ["a", "b", "a", "c", "a"]:
        fake_gallery.store.record(Event(kind="verify", outcome="refused" if name == "a" else "accepted", name=name))
    with fake_gallery.store.reading() as db:
        page, before = query_events(db, EventQuery(person="a", limit=2))
        assert [e.name for e in page] == ["a", "a"] and before is not None
        rest, after = query_events(db, EventQuery(person="a", limit=2, before=before))
        assert len(rest) == 1 and after is None
        assert len(query_events(db, EventQuery(outcome="accepted"))[0]) == 2
        assert query_events(db, EventQuery(since="2999-01-01"))[0] == []
        assert len(query_events(db, EventQuery(since="1h", kind="verify"))[0]) == 5


def test_times_are_parsed_as_the_log_writes_them():
    moment = datetime(2026, 5, 4, 9, 14, 3, tzinfo=timezone.utc)
    assert parse_time("15m", moment=moment) == "2026-05-04T08:59:03.000+00:00"
    assert parse_time("2d", moment=moment) == "2026-05-02T09:14:03.000+00:00"
    assert parse_time("2026-05-04T09:14") == "2026-05-04T09:14:00.000+00:00"
    assert parse_time("2026-05-04T11:14+02:00") == "2026-05-04T09:14:00.000+00:00"
    assert parse_time("2026-05-04", end=True) == "2026-05-04T23:59:59.999+00:00"
    assert parse_time("yesterday", moment=moment) == "2026-05-03T00:00:00.000+00:00"
    with pytest.raises(GalleryError, match="not a time"):
        parse_time("last tuesday")


# -- API keys ---------------------------------------------------------------------------------------------
def test_keys_are_stored_as_salted_hashes_and_checked_in_constant_time(fake_gallery):
    with fake_gallery.store.transaction() as db:
        record, key = create_key(db, "door", "front door")
        _, other = create_key(db, "admin")
    assert key.startswith(f"fg_{record.id}_") and len(key) > 40
    with sqlite3.connect(fake_gallery.path) as raw:
        stored = raw.execute("SELECT salt, hash FROM api_keys").fetchall()
        dump = "\n".join(raw.iterdump())
    assert key not in dump and key.split("_", 2)[2] not in dump
    assert stored[0][0] != stored[1][0]  # a salt per key
    with fake_gallery.store.reading() as db:
        assert check_key(db, key).role == "door"
        assert check_key(db, other).role == "admin"
        assert check_key(db, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert check_key(db, "fg_00000000_" + "x" * 43) is None
        assert check_key(db, "not a key") is None
    with fake_gallery.store.transaction() as db:
        revoked = revoke_key(db, record.id)
    assert revoked.revoked_at is not None
    with fake_gallery.store.reading() as db:
        assert not check_key(db, key).active
        assert [k.label for k in list_keys(db)] == ["front door", "admin key"]
    with pytest.raises(ApiKeyNotFoundError), fake_gallery.store.transaction() as db:
        revoke_key(db, "ffffffff")
    kinds = [(e.kind, e.detail["role"]) for e in reversed(_events(fake_gallery))]
    assert kinds == [("key_created", "door"), ("key_created", "admin"), ("key_revoked", "door")]


# -- lockout -------------------------------------------------------------------------------------------------
def _door(store, name, outcome, moment, policy):
    with store.transaction() as db:
        insert_event(db, Event(kind="verify", outcome=outcome, name=name), moment=moment)
        return lock_if_due(db, name, policy, moment=moment) if outcome == "refused" else None


def test_three_refusals_in_a_row_lock_a_name_until_the_lock_expires(fake_gallery):
    store, policy = fake_gallery.store, LockoutPolicy(3, 600, 900)
    t = datetime(2026, 1, 1, 9, 0, tzinfo=timezone.utc)
    assert not _door(store, "kian", "refused", t, policy).locked
    assert not _door(store, "kian", "refused", t + timedelta(minutes=1), policy).locked
    _door(store, "younes", "refused", t + timedelta(minutes=1), policy)  # another name does not count
    third = _door(store, "kian", "refused", t + timedelta(minutes=2), policy)
    assert third.locked and third.until == iso(t + timedelta(minutes=17))
    with store.reading() as db:
        assert lock_state(db, "kian", t + timedelta(minutes=16)).locked
        assert not lock_state(db, "kian", t + timedelta(minutes=18)).locked  # expired
        assert not lock_state(db, "younes", t + timedelta(minutes=3)).locked
        assert locked_names(db, t + timedelta(minutes=3)) == {"kian": third.until}
        # after the lock, the count starts again
        assert refusals_in_a_row(db, "kian", policy, t + timedelta(minutes=18)) == 0


def test_an_acceptance_or_the_window_breaks_a_run_of_refusals(fake_gallery):
    store, policy = fake_gallery.store, LockoutPolicy(3, 600, 900)
    t = datetime(2026, 1, 1, 9, 0, tzinfo=timezone.utc)
    _door(store, "kian", "refused", t, policy)
    _door(store, "kian", "refused", t, policy)
    _door(store, "kian", "accepted", t, policy)
    assert not _door(store, "kian", "refused", t, policy).locked
    assert not _door(store, "kian", "refused", t, policy).locked
    # the third refusal comes 11 minutes after the first two: only 1 in the window
    assert not _door(store, "kian", "refused", t + timedelta(minutes=11), policy).locked
    assert not _door(store, "kian", "refused", t + timedelta(minutes=12), policy).locked
    assert _door(store, "kian", "refused", t + timedelta(minutes=13), policy).locked


def test_an_admin_unlocks_a_name_and_that_is_an_event(fake_gallery):
    store, policy = fake_gallery.store, LockoutPolicy(1, 600, 900)
    assert _door(store, "kian", "refused", datetime.now(timezone.utc), policy).locked
    with store.transaction() as db:
        assert unlock(db, "kian", Event(endpoint="POST /v1/people/{name}/unlock", key_label="ops"))
        assert not unlock(db, "kian")  # not locked any more
    with store.reading() as db:
        assert not lock_state(db, "kian").locked
    assert [e.kind for e in _events(fake_gallery)][:2] == ["unlock", "lock"]


# -- the schema ---------------------------------------------------------------------------------------------
def test_a_version_2_gallery_is_upgraded_in_place(tmp_path):
    path = tmp_path / "v2.sqlite"
    with Gallery(path, "mean-colour", "flat", threshold=0.1) as gallery:
        gallery.enroll("red", [RED])
    with sqlite3.connect(path) as db:  # back to what version 2 wrote
        for table in ("events", "kept_photos", "api_keys", "people_version"):
            db.execute(f"DROP TABLE {table}")
        for name in [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]:
            db.execute(f"DROP TRIGGER {name}")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with Gallery(path, "mean-colour", "flat", threshold=0.1) as gallery:
        assert gallery.identify(RED).identity == "red"
        gallery.enroll("green", [GREEN])
        assert [e.name for e in _events(gallery)] == ["green"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == SCHEMA_VERSION == "3"


# -- the commands ---------------------------------------------------------------------------------------------
def _cli(*args: str):
    from facegate.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_keys_events_and_unlock_from_the_command_line(fake_gallery):
    path = fake_gallery.path
    fake_gallery.enroll("red", [RED])
    created = _cli("keys", "create", "--role", "door", "--name", "front door", "--gallery", path)
    assert created.exit_code == 0
    key = created.stdout.strip()
    assert (
        key.startswith("fg_") and "\n" not in key
    )  # the key alone on standard output: KEY=$(facegate keys create ...)
    key_id = key.split("_")[1]
    listed = _cli("keys", "list", "--gallery", path)
    assert key_id in listed.output and "front door" in listed.output and key not in listed.output
    assert _cli("keys", "revoke", key_id, "--gallery", path).exit_code == 0
    again = _cli("keys", "revoke", key_id, "--gallery", path)
    assert again.exit_code == 5 and "already revoked" in again.output
    assert _cli("keys", "revoke", "abcdef12", "--gallery", path).exit_code == 5

    with fake_gallery.store.transaction() as db:
        insert_event(db, Event(kind="verify", outcome="refused", name="red", key_label="front door"))
        assert lock_if_due(db, "red", LockoutPolicy(1), Event(key_label="front door")).locked
    unlocked = _cli("unlock", "red", "--gallery", path)
    assert unlocked.exit_code == 0 and "Unlocked door checks for red" in unlocked.output
    assert "were not locked" in _cli("unlock", "red", "--gallery", path).output
    assert _cli("unlock", "nobody", "--gallery", path).exit_code == 5

    text = _cli("events", "--gallery", path).output.splitlines()
    assert [line.split()[2] for line in text] == ["enroll", "key_created", "key_revoked", "verify", "lock", "unlock"]
    assert "[cli unlock " in text[-1] and "[cli keys " in text[1]
    assert 'key "front door"' in text[4]  # the lock: who tried
    as_json = json.loads(_cli("events", "--gallery", path, "--json", "--person", "red", "--kind", "lock").output)
    assert [(e["kind"], e["name"]) for e in as_json["events"]] == [("lock", "red")]
    bad = _cli("events", "--gallery", path, "--since", "someday")
    assert bad.exit_code == 5 and "not a time" in bad.output


def test_the_commands_refuse_a_missing_gallery(tmp_path):
    result = _cli("events", "--gallery", str(tmp_path / "none.sqlite"))
    assert result.exit_code == 5 and "there is no gallery" in result.output


def test_the_audit_log_orders_by_time_as_text():
    times = [
        iso(datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)) for ms in (0, 5, 1000, 86400000)
    ]
    assert times == sorted(times)
    assert np.all([len(t) == len(times[0]) for t in times])
