"""Decisions at a stated error rate: curves, operating points, size-aware thresholds, fusion, the gate."""

from __future__ import annotations

import json
from unittest import mock

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facegate.cli import main
from facegate.decisions import (
    CalibrationError,
    FmrCurve,
    effective_comparisons,
    fusion,
    identification_point,
    mean_embedding,
    scoring_for,
    verification_point,
)
from facegate.decisions.fusion import person_means
from facegate.decisions.normalisation import AsNorm, CohortStats, distance_threshold, normalise
from facegate.decisions.quality import FaceQuality, QualityGate, measure, sharpness
from facegate.decisions.table import save_entry
from facegate.distances import get_metric
from facegate.errors import PoorQualityError
from facegate.evaluate.curves import Scorer, curve_from_labelled, gallery_effect
from facegate.evaluate.curves import template_effect as measure_effect
from facegate.gallery import Gallery

from .conftest import solid


# -- the FMR curve ----------------------------------------------------------------------
def test_curve_rates_are_exact_counts_at_every_stored_threshold():
    rng = np.random.default_rng(0)
    impostor, genuine = rng.normal(1.0, 0.1, 200_000), rng.normal(0.5, 0.1, 3_000)
    curve = FmrCurve.from_scores(impostor, genuine)
    for t, fmr, fnmr in zip(curve.thresholds, curve.fmr, curve.fnmr, strict=True):
        assert fmr == np.sum(impostor <= t) / impostor.size
        assert fnmr == pytest.approx(np.sum(genuine > t) / genuine.size, abs=1e-12)
    assert curve.fmr[0] == 1 / impostor.size and curve.fmr[-1] == 1.0
    assert curve.n_impostor == 200_000 and curve.n_genuine == 3_000
    # log-spaced: about 12 points per decade over 5.3 decades
    assert 55 <= len(curve.thresholds) <= 66


@pytest.mark.parametrize("target", [1e-2, 1e-3, 1e-4, 3e-5])
def test_threshold_for_a_target_keeps_the_brute_force_fmr_within_it(target):
    rng = np.random.default_rng(1)
    impostor = rng.normal(1.0, 0.1, 500_000)
    curve = FmrCurve.from_scores(impostor, rng.normal(0.5, 0.1, 1000))
    t = curve.threshold_for(target)
    counted = np.sum(impostor <= t) / impostor.size
    assert counted <= target * 1.15  # log interpolation between exact points
    assert counted >= target * 0.7
    assert curve.fmr_at(t) == pytest.approx(target, rel=1e-6)


def test_a_target_below_what_was_measured_is_refused():
    curve = FmrCurve.from_scores(np.linspace(1, 2, 1000), np.array([0.5]))
    with pytest.raises(CalibrationError, match=r"smallest measured rate is 0\.001"):
        curve.threshold_for(1e-4)
    with pytest.raises(CalibrationError, match="between 0 and 1"):
        curve.threshold_for(0.0)


def test_many_comparisons_compound_the_fmr():
    curve = FmrCurve.from_scores(np.linspace(0, 1, 10_001), np.array([0.0]))
    fmr = curve.fmr_at(0.1)
    assert fmr == pytest.approx(0.1, rel=1e-2)
    assert float(curve.false_match_rate(0.1, 10)) == pytest.approx(1 - (1 - fmr) ** 10)
    assert curve.threshold_for(0.01, comparisons=10) < curve.threshold_for(0.01)


def test_curve_round_trips_through_json():
    rng = np.random.default_rng(2)
    curve = FmrCurve.from_scores(rng.random(5000), rng.random(50), {"calibrated_on": "x"})
    again = FmrCurve.from_dict(json.loads(json.dumps(curve.to_dict())))
    assert again.provenance == {"calibrated_on": "x"}
    assert again.threshold_for(1e-2) == pytest.approx(curve.threshold_for(1e-2), abs=1e-6)


# -- effects and operating points --------------------------------------------------------
def test_effective_comparisons_interpolate_and_extend():
    effect = {"1": 1.0, "2": 1.5, "3": 2.0}
    assert effective_comparisons(effect, 1) == 1.0
    assert effective_comparisons(effect, 2) == 1.5
    assert effective_comparisons(effect, 5) == 3.0  # +0.5 per photo past the last measurement
    assert effective_comparisons(None, 4) == 4.0  # unmeasured: every photo counts fully
    assert effective_comparisons({"1": 1, "10": 5, "100": 25}, 1000, log_scale=True) == pytest.approx(125)
    assert effective_comparisons(effect, 0) == 0.0


def test_measured_effects_on_independent_synthetic_people():
    """Photos of one person that are near-duplicates act as one template; a gallery
    is worth more comparisons as it grows, never more than its size."""
    rng = np.random.default_rng(3)
    people = rng.normal(size=(400, 8))
    labels = np.repeat(np.arange(400), 3)
    vectors = np.repeat(people, 3, axis=0) + rng.normal(scale=1e-4, size=(1200, 8))
    scorer = Scorer("euclidean")
    curve, _ = curve_from_labelled(vectors, labels, scorer)
    t = curve.threshold_for(1e-2)
    effect = measure_effect(vectors, labels, scorer, "min", t, curve.fmr_at(t), counts=(2, 3))
    assert effect["2"] == pytest.approx(1.0, abs=0.1) and effect["3"] == pytest.approx(1.0, abs=0.1)
    spread = gallery_effect(vectors, labels, scorer, curve, sizes=(10, 100), repeats=10)
    assert spread["1"] == 1.0 < spread["10"] < spread["100"]
    assert spread["10"] <= 12.5 and spread["100"] <= 125  # the union bound, with sampling noise


def test_packaged_operating_points_of_the_default_model():
    scoring = scoring_for("dlib-resnet", "euclidean")
    assert scoring.kind == "asnorm" and len(scoring.norm.cohort) == 1722
    door = verification_point(scoring)
    assert door.target == 1e-3 and door.expected_rate == pytest.approx(1e-3, rel=1e-6)
    three = verification_point(scoring, templates=3)
    assert three.threshold < door.threshold  # three photos, three chances for a look-alike
    assert three.expected_rate == pytest.approx(1e-3, rel=1e-6)
    plain = verification_point(scoring_for("dlib-resnet", "euclidean", normalise=False))
    assert plain.threshold == pytest.approx(0.3760, abs=1e-3)
    raw = verification_point(scoring, threshold=0.4)
    assert raw.target is None and raw.threshold == 0.4


def test_identification_threshold_tightens_as_the_gallery_grows():
    scoring = scoring_for("dlib-resnet", "euclidean")
    thresholds = [identification_point(scoring, [1] * n).threshold for n in (1, 10, 100, 1000, 10000)]
    assert thresholds == sorted(thresholds, reverse=True) and len(set(thresholds)) == 5
    for n in (10, 1000):
        point = identification_point(scoring, [1] * n)
        assert point.expected_rate == pytest.approx(0.01, rel=1e-4) and point.reachable


# -- the size-aware threshold against simulated strangers ------------------------------------
@pytest.fixture
def synthetic_calibration(tmp_path, monkeypatch):
    """A mean-colour calibration measured on synthetic colour 'people' (3 photos each)."""
    monkeypatch.setenv("FACEGATE_THRESHOLDS", str(tmp_path / "thresholds.json"))
    rng = np.random.default_rng(4)
    people = rng.random((1500, 3))
    labels = np.repeat(np.arange(1500), 3)
    vectors = np.repeat(people, 3, axis=0) + rng.normal(scale=0.01, size=(4500, 3))
    scorer = Scorer("euclidean")
    curve, _ = curve_from_labelled(vectors, labels, scorer)
    t = curve.threshold_for(1e-3)
    entry = {
        "calibrated_on": "synthetic colours",
        "default_score": "distance",
        "scores": {
            "distance": {
                "curve": curve.to_dict(),
                "template_effect": measure_effect(vectors, labels, scorer, "both", t, curve.fmr_at(t)),
                "gallery_effect": gallery_effect(vectors, labels, scorer, curve, sizes=(10, 30, 100, 300)),
            }
        },
    }
    save_entry("mean-colour", "euclidean", entry)
    return rng


@pytest.mark.parametrize("size", [20, 200])
def test_size_aware_threshold_matches_simulated_strangers(synthetic_calibration, size):
    rng = synthetic_calibration
    with Gallery(":memory:", "mean-colour", "flat") as gallery:
        enrolled = rng.random((size, 3))
        gallery.add_embeddings_bulk({f"p{i}": v[None] for i, v in enumerate(enrolled)})
        point = gallery.identification_point
        assert point.target == 0.01 and point.reachable
        strangers = rng.random((20_000, 3)) + rng.normal(scale=0.01, size=(20_000, 3))
        named = sum(gallery.identify_embedding(s).known for s in strangers[:4000])
    fpir = named / 4000
    assert 0.005 <= fpir <= 0.02, fpir  # within a factor of 2 of the 1% asked for


def test_defaults_move_with_the_gallerys_size(synthetic_calibration):
    rng = synthetic_calibration
    with Gallery(":memory:", "mean-colour", "flat") as gallery:
        seen = []
        for batch in range(4):
            gallery.add_embeddings_bulk({f"p{batch}-{i}": rng.random((1, 3)) for i in range(10**batch)})
            seen.append(gallery.identification_point.threshold)
        assert seen == sorted(seen, reverse=True) and len(set(seen)) == 4
        state = gallery.state()
        assert state.people == 1111 and state.identification["target_fpir"] == 0.01


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 255), min_size=3, max_size=3), st.sampled_from([1, 2, 3]))
def test_a_door_check_at_the_default_never_accepts_above_its_target_fmr(
    synthetic_calibration, tmp_path_factory, colour, photos
):
    rng = np.random.default_rng(sum(colour))
    with Gallery(":memory:", "mean-colour", "flat") as gallery:
        base = rng.integers(1, 250, 3)
        shots = [solid((int(base[0]) + k, int(base[1]), int(base[2]))) for k in range(photos)]  # distinct photos
        gallery.enroll("door", shots)
        result = gallery.verify_identity(solid(tuple(colour)), "door")
        assert result.target_fmr == 1e-3
        if result.verified:
            assert result.estimated_fmr <= result.target_fmr
            assert result.distance <= result.threshold
        else:
            assert result.distance > result.threshold or result.estimated_fmr > result.target_fmr


# -- cohort normalisation --------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(st.floats(-8, 8), st.integers(0, 1000))
def test_score_threshold_and_distance_threshold_agree(score_threshold, seed):
    rng = np.random.default_rng(seed)
    cohort = rng.normal(size=(100, 16))
    norm = AsNorm(cohort / np.linalg.norm(cohort, axis=1, keepdims=True), "euclidean", top_k=10)
    a, b = rng.normal(size=(1, 16)), rng.normal(size=(1, 16))
    sa, sb = norm.stats(a / np.linalg.norm(a)), norm.stats(b / np.linalg.norm(b))
    limit = distance_threshold(score_threshold, sa, sb)
    assert normalise(limit, sa, sb)[0] == pytest.approx(score_threshold, abs=1e-9)


def test_cohort_statistics_use_the_nearest_top_k():
    norm = AsNorm(np.array([[0.0], [1.0], [2.0], [10.0]]), "euclidean", top_k=2)
    stats = norm.stats(np.array([[0.5]]))
    assert stats.mean[0] == pytest.approx(0.5) and stats.std[0] == pytest.approx(1e-6)
    assert norm.stats(np.array([[2.0]])).mean[0] == pytest.approx(0.5)


def test_the_cohorts_reference_is_its_own_medians_without_itself():
    norm = AsNorm(np.array([[0.0], [1.0], [3.0], [6.0]]), "euclidean", top_k=2)
    # each face's two nearest others: 0 -> 1, 3; 1 -> 1, 2; 3 -> 2, 3; 6 -> 3, 5 (spreads 1, 0.5, 0.5, 1)
    assert norm.reference == (1.5, 2.25, 0.75)


def test_the_index_penalty_is_the_reference_persons_lowering_less_each_ones():
    norm = AsNorm(np.array([[0.0], [1.0], [3.0], [6.0]]), "euclidean", top_k=2)
    nearest, mean, spread = norm.reference
    most = mean + 6 * spread - nearest  # the shift of a person six spreads out with no spread
    people = CohortStats(np.array([mean, mean, mean + spread, 100.0]), np.array([spread, spread / 2, spread, 1e-9]))
    penalty = norm.index_penalty(people)
    slope = 2 * nearest  # euclidean: squared distances
    # the reference person is not shifted; a narrower one, or one whose strangers are further,
    # scores better at the same distance: a smaller penalty; one beyond the extreme gets none
    shift_narrow = (mean - nearest) * (2 / spread) / (3 / spread) + (nearest - mean) / 3
    shift_far = spread / 2
    np.testing.assert_allclose(
        penalty, [slope * most, slope * (most - shift_narrow), slope * (most - shift_far), 0.0], rtol=1e-12
    )


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.0, 4.0), st.floats(1e-6, 2.0)), min_size=1, max_size=20),
    st.sampled_from(["euclidean", "euclidean_l2", "cosine"]),
)
def test_index_penalties_are_never_negative(stats, metric):
    cohort = np.random.default_rng(0).standard_normal((40, 8))
    norm = AsNorm(cohort, metric, top_k=5)
    mean, std = (np.array(x) for x in zip(*stats, strict=True))
    assert (norm.index_penalty(CohortStats(mean, std)) >= 0).all()


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_cohort_statistics_of_a_batch_are_each_rows_own(metric, monkeypatch):
    """In chunks (3 rows here) or one probe at a time, each row gets the mean and spread of its
    ``top_k`` smallest cohort distances, as the metric's pairwise distances give them."""
    import facegate.decisions.normalisation as normalisation

    monkeypatch.setattr(normalisation, "CHUNK", 3)
    rng = np.random.default_rng(3)
    cohort, rows = rng.normal(size=(40, 8)).astype(np.float32), rng.normal(size=(7, 8)).astype(np.float32)
    norm = AsNorm(cohort, metric, top_k=5)
    batch = norm.stats(rows)
    nearest = np.sort(get_metric(metric).pairwise(rows, cohort).astype(np.float64), axis=1)[:, :5]
    np.testing.assert_allclose(batch.mean, nearest.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(batch.std, nearest.std(axis=1), atol=1e-6)
    one = [norm.stats(row) for row in rows]
    np.testing.assert_allclose(batch.mean, [s.mean[0] for s in one], atol=1e-6)
    np.testing.assert_allclose(batch.std, [s.std[0] for s in one], atol=1e-6)


# -- fusion ------------------------------------------------------------------------------------
def test_mean_embedding_of_unit_vectors_is_unit():
    v = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(mean_embedding(v), [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)
    np.testing.assert_allclose(mean_embedding(np.array([[1.0, 2.0], [3.0, 4.0]])), [2.0, 3.0])


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=30),
    dim=st.integers(1, 6),
    unit=st.booleans(),
    seed=st.integers(0, 2**16),
    block=st.sampled_from([1, 2, 7, fusion.MEANS_BLOCK]),
)
def test_person_means_add_each_groups_rows_in_order_in_float64(sizes, dim, unit, seed, block):
    """The same bits as adding each group's rows one after another in float64 (``np.add.reduceat``'s
    order, which the gallery's means had before), then dividing, then unit length when the rows are;
    in blocks of any number of groups (a large gallery's are computed ``MEANS_BLOCK`` at a time)."""
    rows = np.random.default_rng(seed).standard_normal((sum(sizes), dim)).astype(np.float32)
    if unit:
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    expected = []
    for start, size in zip(starts, sizes, strict=True):
        total = rows[start].astype(np.float64)
        for row in rows[start + 1 : start + size]:
            total = total + row
        mean = total / size
        expected.append(mean / max(np.linalg.norm(mean), 1e-12) if unit else mean)
    with mock.patch.object(fusion, "MEANS_BLOCK", block):
        got = person_means(rows, starts)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array(expected).astype(np.float32))


def test_several_frames_make_one_probe(fake_gallery):
    fake_gallery.enroll("red", [solid((200, 20, 20))])
    fake_gallery.enroll("blue", [solid((20, 20, 200))])
    # each frame alone is 0.12 from red (over the 0.1 threshold); their mean is red itself
    frames = [solid((200 + 31, 20, 20)), solid((200 - 31, 20, 20))]
    assert not fake_gallery.verify_identity(frames[0], "red").verified
    fused = fake_gallery.verify_identity(frames, "red")
    assert fused.verified and fused.distance == pytest.approx(0.0, abs=1e-6)
    assert fake_gallery.identify(frames).identity == "red"


# -- the quality gate ----------------------------------------------------------------------------
def frontal(eye_distance: float, nose_shift: float = 0.0) -> np.ndarray:
    """dlib 5-point landmarks of a face with the eyes ``eye_distance`` apart."""
    half = eye_distance / 2
    return np.array(
        [
            [100 + half + 5, 100],
            [100 + half - 5, 100],
            [100 - half - 5, 100],
            [100 - half + 5, 100],
            [100 + nose_shift * eye_distance, 130],
        ]
    )


def test_quality_measures_size_pose_and_sharpness():
    chip = np.zeros((150, 150, 3), np.uint8)
    chip[::2] = 255  # stripes: sharp
    q = measure(frontal(40, nose_shift=0.3), chip)
    assert q.eye_distance == pytest.approx(40) and q.yaw == pytest.approx(0.3)
    assert q.sharpness > 1000
    assert sharpness(np.full((150, 150), 128, np.uint8)) == 0.0


def test_gate_refuses_small_turned_or_blurred_faces_with_the_reason():
    gate = QualityGate()
    assert gate.reasons(FaceQuality(40, 0.1, 50)) == []
    assert gate.reasons(FaceQuality(8, 0.1, 50)) == ["the face is too small (8 px between the eyes, need 12)"]
    assert "turned too far (yaw +0.60" in gate.reasons(FaceQuality(40, 0.6, 50))[0]
    assert "blurred (sharpness 1" in gate.reasons(FaceQuality(40, 0.0, 1))[0]


def test_a_poor_probe_is_try_again_never_a_decision(tmp_path):
    """A real face out of focus: the gallery refuses to decide (exit code 7)."""
    from PIL import Image, ImageFilter

    from .conftest import data_dir

    photo = data_dir("lfw", "images", "Aaron_Peirsol") / "Aaron_Peirsol_0001.jpg"
    gallery_path = tmp_path / "g.sqlite"
    with Gallery(gallery_path) as gallery:
        gallery.enroll("aaron", [photo])
        path = tmp_path / "blurred.png"
        Image.open(data_dir("lfw", "images", "Aaron_Peirsol") / "Aaron_Peirsol_0002.jpg").filter(
            ImageFilter.GaussianBlur(4)
        ).save(path)
        with pytest.raises(PoorQualityError, match="try again: the face is blurred"):
            gallery.verify_identity(path, "aaron")
        with pytest.raises(PoorQualityError):
            gallery.identify(path)
        ungated = Gallery(gallery_path, quality=None).verify_identity(path, "aaron")
        assert ungated.identity == "aaron" and isinstance(ungated.verified, bool)
    before = Gallery(gallery_path).people()
    run = CliRunner().invoke(main, ["verify", str(path), "--as", "aaron", "--gallery", str(gallery_path)])
    assert run.exit_code == 7 and "try again" in run.output
    assert Gallery(gallery_path).people() == before


# -- results and the command line ---------------------------------------------------------------
def test_every_result_carries_its_error_rate(tmp_path):
    from .conftest import data_dir

    images = data_dir("happyhouse", "images")
    with Gallery(tmp_path / "g.sqlite") as gallery:
        gallery.enroll("younes", [images / "younes.jpg"])
        gallery.enroll("kian", [images / "kian.jpg"])
        door = gallery.verify_identity(images / "camera_0.jpg", "younes")
        assert door.verified and door.target_fmr == 1e-3 and door.estimated_fmr < 1e-5
        assert door.distance < door.threshold and "asnorm curve" in door.threshold_source
        who = gallery.identify(images / "camera_0.jpg")
        assert who.identity == "younes" and who.target_fpir == 0.01 and who.enrolled_people == 2
        assert who.estimated_fpir < 1e-4
        json.dumps(door.to_dict()), json.dumps(who.to_dict())
        strict = Gallery(tmp_path / "g.sqlite", fmr=1e-5)
        assert strict.verify_identity(images / "camera_0.jpg", "younes").target_fmr == 1e-5
        assert strict.door_point("younes").threshold < gallery.door_point("younes").threshold


def test_people_states_the_error_rates_and_warns(tmp_path):
    path = tmp_path / "g.sqlite"
    with Gallery(path) as gallery:
        rng = np.random.default_rng(5)
        vectors = rng.normal(size=(5000, 128))
        gallery.add_embeddings_bulk({f"p{i}": v[None] / np.linalg.norm(v) for i, v in enumerate(vectors)})
    run = CliRunner().invoke(main, ["people", "--gallery", str(path)])
    assert run.exit_code == 0
    assert "5000 people, 5000 photos (asnorm scores)." in run.output
    assert "Identification: names a stranger as someone 1% of the time (target FPIR 0.01 at this size)" in run.output
    assert "warning: at FPIR 0.01 with 5000 people about 52% of enrolled people would not be recognised" in run.output
    payload = json.loads(CliRunner().invoke(main, ["people", "--json", "--gallery", str(path), "--fpir", "0.1"]).output)
    assert payload["state"]["identification"]["target_fpir"] == 0.1


def test_models_lists_the_operating_points():
    run = CliRunner().invoke(main, ["models"])
    assert run.exit_code == 0
    assert "dlib-resnet          euclidean     distance  FMR 0.01: 0.4233" in run.output
    assert "asnorm*" in run.output


def test_an_unreachable_target_is_refused_when_the_gallery_opens():
    with pytest.raises(CalibrationError, match="cannot reach 1e-09"):
        Gallery(":memory:", fmr=1e-9)
    with pytest.raises(CalibrationError, match="between 0 and 1"):
        Gallery(":memory:", fpir=1.5)
