"""Identification: rank, CMC, open-set DIR@FPIR, the k-fold photo protocol, and ORL/Yale end to end."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.evaluate.identification import cmc, open_set, person_scores, rank1, ranks
from facegate.evaluate.identification_protocol import identification_kfold, photo_folds
from tests.conftest import data_dir

SYSTEM = {"model": "test", "detector": "test", "metric": "euclidean", "tta": False}


def test_person_scores_take_the_closest_template():
    gallery = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 3.0]])
    labels = ["a", "b", "a"]
    probes = np.array([[0.0, 2.5], [9.0, 0.0]])
    ps = person_scores(gallery, labels, probes)
    assert ps.people.tolist() == ["a", "b"]
    np.testing.assert_allclose(ps.scores, [[0.5, np.hypot(10, 2.5)], [9.0, 1.0]])


def test_failed_rows_are_ignored_as_templates_and_miss_as_probes():
    gallery = np.array([[0.0, 0.0], [np.nan, np.nan], [5.0, 5.0]])
    probes = np.array([[0.0, 0.1], [np.nan, np.nan]])
    ps = person_scores(gallery, ["a", "b", "c"], probes)
    assert ps.people.tolist() == ["a", "b", "c"]
    assert np.isinf(ps.scores[:, 1]).all()  # b has no usable template
    assert np.isinf(ps.scores[1]).all()  # the failed probe
    r = ranks(ps, ["a", "a"])
    assert r[0] == 1 and np.isinf(r[1])
    assert np.isinf(ranks(ps, ["b"])[0])  # a person without templates cannot be found


def test_ranks_and_cmc_by_hand():
    scores = np.array(
        [
            [0.1, 0.5, 0.9],  # true a: rank 1
            [0.4, 0.3, 0.1],  # true b: rank 2 (c is closer)
            [0.3, 0.2, 0.4],  # true c: rank 3
            [0.5, 0.5, 0.9],  # true a, tie with b: counted against the probe -> rank 2
        ]
    )
    from facegate.evaluate.identification import PersonScores

    r = ranks(PersonScores(scores, np.array(["a", "b", "c"])), ["a", "b", "c", "a"])
    assert r.tolist() == [1, 2, 3, 2]
    np.testing.assert_allclose(cmc(r), [0.25, 0.75, 1.0])
    assert rank1(r) == 0.25
    np.testing.assert_allclose(cmc(np.array([1, np.inf]), max_rank=3), [0.5, 0.5, 0.5])


def test_unenrolled_probe_label_is_a_miss():
    ps = person_scores(np.array([[0.0], [1.0]]), ["a", "b"], np.array([[0.0]]))
    assert np.isinf(ranks(ps, ["zed"])[0])


def test_open_set_dir_at_fpir_by_hand():
    from facegate.evaluate.identification import PersonScores

    people = np.array(["a", "b"])
    # mated probes: true-person distances 0.1, 0.2, 0.35 (rank 1), and one at rank 2
    mated = PersonScores(np.array([[0.1, 0.9], [0.9, 0.2], [0.35, 0.8], [0.5, 0.3]]), people)
    # 10 non-mated probes, closest scores 0.3, 0.4, ..., 1.2
    non = PersonScores(np.stack([np.arange(10) / 10 + 0.3, np.full(10, 2.0)], axis=1), people)
    (p10, p50, p1) = open_set(mated, ["a", "b", "a", "a"], non, targets=(0.1, 0.5, 0.01))
    # FPIR <= 0.1 allows one false alarm: threshold just under 0.4
    assert p10.fpir == pytest.approx(0.1)
    assert 0.3 <= p10.threshold < 0.4
    assert p10.dir == pytest.approx(3 / 4)  # 0.1, 0.2, 0.35 found; the rank-2 probe never counts
    assert p50.fpir == pytest.approx(0.5)
    assert p50.dir == pytest.approx(3 / 4)
    assert p1.dir is None and "100" in p1.note  # 10 non-mated probes cannot measure 1 %


def _clusters(n_people: int, per_person: int, spread: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, 16))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = np.repeat(centres, per_person, axis=0) + spread * rng.normal(size=(n_people * per_person, 16))
    labels = np.repeat([f"p{i:02d}" for i in range(n_people)], per_person)
    return vectors, labels


def test_photo_folds_deal_each_person_evenly():
    labels = np.repeat(["a", "b", "c"], [4, 5, 6])
    folds = photo_folds(labels, 2, seed=1)
    for person in "abc":
        counts = np.bincount(folds[labels == person], minlength=2)
        assert abs(counts[0] - counts[1]) <= 1
    assert np.array_equal(folds, photo_folds(labels, 2, seed=1))
    with pytest.raises(ValueError):
        photo_folds(labels, 1)


def test_kfold_identification_on_separable_clusters():
    vectors, labels = _clusters(20, 6, spread=0.01)
    result = identification_kfold(vectors, labels, SYSTEM, {}, k=2, seed=0)
    assert result.rank1 == 1.0
    assert result.rank1_folds.tolist() == [1.0, 1.0]
    assert result.n_people == 20 and result.n_images == 120
    assert result.n_unknown_people == 10
    point = result.open_set[0]
    assert point["target_fpir"] == 0.1 and point["dir"] == 1.0 and point["fpir"] <= 0.1


def test_kfold_identification_degrades_with_noise_and_failures():
    vectors, labels = _clusters(20, 6, spread=0.6, seed=2)
    noisy = identification_kfold(vectors, labels, SYSTEM, {}, k=3, seed=0)
    assert 0.05 < noisy.rank1 < 1.0
    assert np.all(np.diff(noisy.cmc) >= 0)
    vectors[::6] = np.nan  # one failed photo per person
    failed = identification_kfold(vectors, labels, SYSTEM, {"x": "NoFaceError"}, k=3, seed=0)
    assert failed.rank1 <= noisy.rank1
    assert failed.cmc[-1] <= 1 - 20 / 120 + 1e-9  # the failed probes never come back


def test_result_rows_and_dict():
    vectors, labels = _clusters(6, 4, spread=0.05)
    result = identification_kfold(vectors, labels, SYSTEM, {"img": "NoFaceError: none"}, k=2)
    d = result.to_dict()
    assert d["rank1"] == result.rank1 and d["folds"] == 2
    assert d["failure_to_enrol"]["images"] == 1
    text = "\n".join(f"{k} {v}" for k, v in result.rows())
    assert "rank-1" in text and "DIR" in text


# -- real data ------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.slow
def test_orl_two_fold_rank1(embedding_cache):
    """ORL: 40 people, 92x112 grey pre-cropped faces; HOG with automatic upsampling."""
    from facegate.datasets.folders import load_folder
    from facegate.evaluate.run import EmbedOptions, System, evaluate_identification

    faces = load_folder(data_dir("orl"))
    assert len(faces.people) == 40 and len(faces) == 400
    result, embedded = evaluate_identification(
        faces, System.make("dlib-resnet", "hog"), EmbedOptions(cache_dir=embedding_cache), folds=2
    )
    print(f"ORL rank-1 {result.rank1:.4f}, {embedded.n_failed} of 400 without a face")
    assert embedded.n_failed <= 20
    assert result.rank1 >= 0.95


@pytest.mark.data
@pytest.mark.slow
def test_yale_end_to_end(embedding_cache, tmp_path):
    from click.testing import CliRunner

    from facegate.cli.evaluate import evaluate

    yale = data_dir("yale")
    run = CliRunner().invoke(
        evaluate, ["identify", str(yale), "--folds", "2", "--cache", str(embedding_cache), "--out", str(tmp_path)]
    )
    assert run.exit_code == 0, run.output
    assert "flat-prefix" in (tmp_path / "report.md").read_text()
    import json

    report = json.loads((tmp_path / "report.json").read_text())
    (result,) = report["results"]
    assert report["dataset"]["people"] == 15 and report["dataset"]["images"] == 164
    print(f"Yale rank-1 {result['rank1']:.4f}, FTE {result['failure_to_enrol']['images']}")
    assert result["rank1"] >= 0.7


def test_vectorised_ranks_match_a_brute_force_loop():
    rng = np.random.default_rng(5)
    for trial in range(20):
        n_people = int(rng.integers(2, 8))
        g_labels = rng.integers(0, n_people, size=int(rng.integers(n_people, 30)))
        gallery = rng.normal(size=(len(g_labels), 4)).round(1)  # rounding makes ties
        probes = rng.normal(size=(15, 4)).round(1)
        p_labels = rng.integers(0, n_people, size=15)
        ps = person_scores(gallery, g_labels, probes)
        fast = ranks(ps, p_labels)
        for i, probe in enumerate(probes):
            best = {}
            for g, lab in zip(gallery, g_labels, strict=True):
                best[lab] = min(best.get(lab, np.inf), float(np.linalg.norm(probe - g)))
            if p_labels[i] not in best:
                assert np.isinf(fast[i]), trial
                continue
            true = best[p_labels[i]]
            assert fast[i] == sum(d <= true + 1e-12 for d in best.values()), trial
