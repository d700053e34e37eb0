"""The gallery on synthetic faces: transactions, rename, remove, model mixing, reopening.

Tests taking ``fake_gallery`` or ``gallery_location`` run once per backend (SQLite and a
real PostgreSQL with pgvector: see ``conftest.gallery_location``)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from facegate.errors import (
    DuplicatePersonError,
    DuplicateTemplateError,
    GalleryError,
    ImageError,
    ModelMismatchError,
    NoFaceError,
    PersonNotFoundError,
)
from facegate.gallery import Gallery

from .conftest import solid

RED, GREEN, BLUE, BLACK = (200, 20, 20), (20, 200, 20), (20, 20, 200), (0, 0, 0)


@pytest.fixture
def fake_gallery(gallery_location):
    """The stand-in gallery (see conftest), on each backend."""
    gallery = Gallery(gallery_location, model_name="mean-colour", detector_backend="flat", threshold=0.1)
    yield gallery
    gallery.close()


def snapshot(gallery: Gallery):
    return [(r.name, r.templates) for r in gallery.people()], gallery.template_count


def test_enroll_identify_and_unknown(fake_gallery):
    fake_gallery.enroll("red", [solid(RED), solid((190, 25, 20))])
    fake_gallery.enroll("green", [solid(GREEN)])
    assert fake_gallery.template_count == 3 and len(fake_gallery) == 2
    result = fake_gallery.identify(solid((195, 22, 22)))
    assert result.identity == "red" and result.known
    assert [c.name for c in result.candidates] == ["red", "green"]
    assert result.distance < 0.05
    stranger = fake_gallery.identify(solid(BLUE))
    assert stranger.identity is None and not stranger.known
    assert stranger.candidates  # still reports who was closest
    assert set(stranger.to_dict()) >= {"identity", "distance", "threshold", "candidates", "model", "time"}


def test_identify_on_empty_gallery_is_unknown(fake_gallery):
    result = fake_gallery.identify(solid(RED))
    assert result.identity is None and result.candidates == [] and result.distance is None


def test_no_face_is_an_error_never_a_match(fake_gallery):
    fake_gallery.enroll("red", [solid(RED)])
    with pytest.raises(NoFaceError):
        fake_gallery.identify(solid(BLACK))
    with pytest.raises(NoFaceError):
        fake_gallery.verify_identity(solid(BLACK), "red")


def test_failed_enrollment_leaves_gallery_unchanged(fake_gallery):
    fake_gallery.enroll("red", [solid(RED)])
    before = snapshot(fake_gallery)
    with pytest.raises(NoFaceError):
        fake_gallery.enroll("green", [solid(GREEN), solid(BLACK)])
    with pytest.raises(ImageError):
        fake_gallery.enroll("green", [solid(GREEN), b"not an image"])
    with pytest.raises(NoFaceError):
        fake_gallery.add_photos("red", [solid((180, 30, 30)), solid(BLACK)])
    assert snapshot(fake_gallery) == before
    assert "green" not in fake_gallery


def test_duplicate_photo_in_one_call_rolls_back(fake_gallery):
    with pytest.raises(DuplicateTemplateError):
        fake_gallery.enroll("red", [solid(RED), solid(RED)])
    assert snapshot(fake_gallery) == ([], 0)


def test_duplicate_names_and_unknown_people(fake_gallery):
    fake_gallery.enroll("red", [solid(RED)])
    with pytest.raises(DuplicatePersonError):
        fake_gallery.enroll("red", [solid((10, 10, 10))])
    with pytest.raises(PersonNotFoundError):
        fake_gallery.remove("nobody")
    with pytest.raises(PersonNotFoundError):
        fake_gallery.verify_identity(solid(RED), "nobody")
    with pytest.raises(GalleryError):
        fake_gallery.enroll("  ", [solid(GREEN)])


def test_rename_and_remove(fake_gallery):
    fake_gallery.enroll("red", [solid(RED)])
    fake_gallery.enroll("green", [solid(GREEN), solid((25, 190, 25))])
    fake_gallery.rename("red", "scarlet")
    assert fake_gallery.identify(solid(RED)).identity == "scarlet"
    with pytest.raises(DuplicatePersonError):
        fake_gallery.rename("scarlet", "green")
    assert fake_gallery.remove("green") == 2
    assert [r.name for r in fake_gallery.people()] == ["scarlet"]
    assert fake_gallery.identify(solid(GREEN)).identity is None


def test_verify_identity_door_check(fake_gallery):
    fake_gallery.enroll("red", [solid(RED)])
    fake_gallery.enroll("green", [solid(GREEN)])
    ok = fake_gallery.verify_identity(solid((198, 21, 20)), "red")
    assert ok.verified and ok.identity == "red"
    no = fake_gallery.verify_identity(solid(GREEN), "red")
    assert not no.verified and no.distance > no.threshold


def test_reopening_keeps_everything(gallery_location):
    path = gallery_location
    with Gallery(path, model_name="mean-colour", detector_backend="flat", threshold=0.1) as g:
        g.enroll("red", [solid(RED), solid((180, 30, 30))])
        g.enroll("green", [solid(GREEN)])
        g.rename("green", "lime")
    with Gallery(path, detector_backend="flat", threshold=0.1) as g:  # model read from the file
        assert g.model_name == "mean-colour"
        assert [(r.name, r.templates) for r in g.people()] == [("lime", 1), ("red", 2)]
        assert g.identify(solid(GREEN)).identity == "lime"


def test_model_mixing_is_refused(gallery_location):
    path = gallery_location
    with Gallery(path, model_name="mean-colour", detector_backend="flat", threshold=0.1) as g:
        g.enroll("red", [solid(RED)])
    with pytest.raises(ModelMismatchError, match="mean-colour"):
        Gallery(path, model_name="pixels")


def test_store_records_template_metadata(tmp_path):
    path = tmp_path / "g.sqlite"
    with Gallery(path, model_name="mean-colour", detector_backend="flat", threshold=0.1) as g:
        g.enroll("red", [solid(RED)])
    with sqlite3.connect(path) as db:
        model, sha, box = db.execute("SELECT model, image_sha256, box FROM templates").fetchone()
        journal = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert model == "mean-colour" and len(sha) == 64 and '"w": 32' in box
    assert journal == "wal"


def test_changes_by_another_process_are_seen(gallery_location):
    path = gallery_location
    with (
        Gallery(path, model_name="mean-colour", detector_backend="flat", threshold=0.1) as reader,
        Gallery(path, detector_backend="flat", threshold=0.1) as writer,
    ):
        assert reader.identify(solid(RED)).identity is None
        writer.enroll("red", [solid(RED)])
        assert reader.identify(solid(RED)).identity == "red"


def test_enroll_many_is_per_person_all_or_nothing(fake_gallery):
    report = fake_gallery.enroll_many(
        {"red": [solid(RED)], "green": [solid(GREEN), solid(BLACK)], "blue": [solid(BLUE)]}, progress=False
    )
    assert report.enrolled == {"red": 1, "blue": 1}
    assert "no face" in report.failed["green"]
    assert "green" not in fake_gallery
    empty = fake_gallery.enroll_many({"nobody": []})
    assert empty.failed == {"nobody": "no photos"} and "nobody" not in fake_gallery
    again = fake_gallery.enroll_many({"red": [solid((10, 10, 100))]})
    assert again.skipped == ["red"] and fake_gallery.template_count == 2


def test_search_top_k_orders_people_by_their_closest_template(gallery_location):
    with Gallery(gallery_location, "mean-colour", "flat", threshold=0.1, fusion="min") as gallery:
        gallery.add_embeddings("a", np.array([[0.0, 0, 0], [0.9, 0.9, 0.9]]))
        gallery.add_embeddings("b", np.array([[0.2, 0, 0]]))
        gallery.add_embeddings("c", np.array([[0.5, 0, 0]]))
        found = gallery.search(np.array([0.85, 0.9, 0.9]), top_k=2)
        assert [c.name for c in found] == ["a", "c"]
        assert found[0].distance == pytest.approx(0.05, abs=1e-6)


def test_fusion_both_averages_the_closest_template_and_the_mean(fake_gallery):
    assert fake_gallery.fusion == "both"
    fake_gallery.add_embeddings("a", np.array([[0.0, 0, 0], [0.6, 0, 0]]))
    # closest template 0.1 away, the mean (0.3, 0, 0) 0.2 away: fused 0.15
    assert fake_gallery.search(np.array([0.1, 0, 0]), top_k=1)[0].distance == pytest.approx(0.15, abs=1e-6)


def brute_force(templates, query, fusion: str) -> dict[str, float]:
    """Each person's fused distance, one template at a time. A mean is made unit length again
    when every template of the gallery is (to within 1e-3, as ``person_means`` decides)."""
    vectors: dict[str, list] = {}
    for name, vector in templates:
        vectors.setdefault(name, []).append(np.float64(vector))
    unit = np.allclose([np.linalg.norm(np.float32(v)) for _, v in templates], 1.0, atol=1e-3)
    out = {}
    for name, rows in vectors.items():
        closest = min(float(np.linalg.norm(r - np.float64(query))) for r in rows)
        mean = np.mean(np.float32(rows), axis=0).astype(np.float64)
        mean = mean / np.linalg.norm(mean) if unit and np.linalg.norm(mean) > 0 else mean
        to_mean = float(np.linalg.norm(mean - np.float64(query)))
        out[name] = {"min": closest, "mean": to_mean, "both": (closest + to_mean) / 2}[fusion]
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.sampled_from("abcde"), st.lists(st.floats(0, 1), min_size=3, max_size=3)),
        min_size=1,
        max_size=25,
    ),
    st.lists(st.floats(0, 1), min_size=3, max_size=3),
    st.sampled_from(["min", "mean", "both"]),
)
@example(templates=[("a", [0.0, 0.0, 0.9998898382462407])], query=[0.0, 0.0, 0.0], fusion="mean")
def test_search_agrees_with_brute_force(tmp_path_factory, templates, query, fusion):
    with Gallery(":memory:", model_name="mean-colour", detector_backend="flat", threshold=0.1, fusion=fusion) as g:
        for name, vector in templates:
            g.add_embeddings(name, np.array([vector]), sources=[str(np.random.random())])
        best = brute_force(templates, query, fusion)
        found = g.search(np.array(query), top_k=5)
        assert [c.name for c in found][:1] == [min(best, key=best.get)] or np.isclose(
            found[0].distance, min(best.values()), atol=1e-5
        )
        assert [c.distance for c in found] == sorted(c.distance for c in found)
        np.testing.assert_allclose([c.distance for c in found], sorted(best.values())[:5], atol=1e-5)


def test_a_model_and_a_detector_can_be_given_as_instances(tmp_path):
    """``weights=`` in code: the gallery embeds with the instance given, records its name and
    weights, and refuses the same name with other weights."""
    from facegate.detection import DETECTORS
    from facegate.errors import ModelMismatchError
    from facegate.models import MODELS

    base = type(MODELS.create("mean-colour"))

    class Reversed(base):
        """The stand-in model with other "weights": the colour's channels reversed."""

        def __init__(self, weights: str) -> None:
            self.weights = weights

        def weights_id(self) -> str:
            return self.weights

        def embed(self, chips):
            return super().embed(chips)[:, ::-1].copy()

    path = tmp_path / "g.sqlite"
    with Gallery(path, model_name=Reversed("v1"), detector_backend=DETECTORS.create("flat"), threshold=0.1) as g:
        g.enroll("red", [solid(RED)])
        result = g.identify(solid(RED))
        assert (result.identity, result.model, result.detector_backend) == ("red", "mean-colour", "flat")
        assert g.settings.weights == "v1"
        np.testing.assert_allclose(g.store.load_matrix()[1][0], np.array(RED[::-1]) / 255.0, rtol=1e-6)
    with pytest.raises(ModelMismatchError, match="weights: 'v1' in the gallery, 'v2' here"):
        Gallery(path, model_name=Reversed("v2"), detector_backend="flat", threshold=0.1)
