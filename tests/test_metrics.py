"""Verification metrics: hand-computed cases, scikit-learn agreement, failed comparisons, k-fold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from facegate.evaluate.metrics import (
    accuracy,
    at_fmr,
    auc,
    best_threshold,
    eer,
    roc_curve,
)
from facegate.evaluate.protocol import assign_folds, kfold_accuracy

# genuine pairs at 0.1, 0.2, 0.6; impostors at 0.4, 0.7, 0.8, 0.9
D = np.array([0.1, 0.2, 0.6, 0.4, 0.7, 0.8, 0.9])
Y = np.array([1, 1, 1, 0, 0, 0, 0])


def test_roc_by_hand():
    roc = roc_curve(D, Y)
    assert roc.thresholds[1:].tolist() == [0.1, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9]
    assert roc.thresholds[0] < 0.1
    np.testing.assert_allclose(roc.tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1, 1])
    np.testing.assert_allclose(roc.fpr, [0, 0, 0, 1 / 4, 1 / 4, 2 / 4, 3 / 4, 1])
    np.testing.assert_allclose(roc.fnmr, 1 - roc.tpr)


def test_roc_merges_tied_distances():
    roc = roc_curve([0.5, 0.5, 0.5, 0.2], [1, 0, 0, 1])
    assert roc.thresholds[1:].tolist() == [0.2, 0.5]
    np.testing.assert_allclose(roc.tpr, [0, 0.5, 1])
    np.testing.assert_allclose(roc.fpr, [0, 0, 1])


def test_auc_by_hand():
    # one impostor out-ranks one genuine pair: 12 genuine/impostor orderings, 1 wrong
    assert auc(roc_curve(D, Y)) == pytest.approx(11 / 12)
    assert auc(roc_curve([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])) == pytest.approx(1.0)
    assert auc(roc_curve([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])) == pytest.approx(0.0)


def test_accuracy_and_best_threshold_by_hand():
    assert accuracy(D, Y, 0.2) == pytest.approx(6 / 7)  # 0.6 genuine rejected
    assert accuracy(D, Y, 0.65) == pytest.approx(6 / 7)  # 0.4 impostor accepted
    assert accuracy(D, Y, 0.05) == pytest.approx(4 / 7)
    t, acc = best_threshold(D, Y)
    assert acc == pytest.approx(6 / 7)
    assert accuracy(D, Y, t) == pytest.approx(acc)
    # the best run spans thresholds 0.2 .. 0.6 (both 6/7); the pick sits strictly between data points
    assert t not in D.tolist()


def test_best_threshold_accept_nothing_stays_below_the_smallest_distance():
    # every genuine pair is farther than every impostor: the best is to accept nothing
    d = np.array([0.1, 0.2, 0.3, 0.9])
    y = np.array([0, 0, 0, 1])
    t, acc = best_threshold(d, y)
    assert t < 0.1
    assert acc == pytest.approx(3 / 4)
    assert accuracy(d, y, t) == pytest.approx(3 / 4)


def test_best_threshold_separable_is_midway():
    t, acc = best_threshold([0.1, 0.3, 0.7, 0.9], [1, 1, 0, 0])
    assert acc == 1.0
    assert t == pytest.approx(0.5)


def test_eer_by_hand():
    rate, t = eer([0.1, 0.3, 0.7, 0.9], [1, 1, 0, 0])
    assert rate == 0.0
    # genuine 0.2, 0.6 and impostor 0.4, 0.8: from the impostor at 0.4 on, one error of each
    # kind out of two; FMR and FNMR first meet, at 0.5, at that threshold
    rate, t = eer([0.2, 0.6, 0.4, 0.8], [1, 1, 0, 0])
    assert (rate, t) == (0.5, 0.4)
    roc = roc_curve([0.2, 0.6, 0.4, 0.8], [1, 1, 0, 0])
    i = int(np.flatnonzero(roc.thresholds == t)[0])
    assert roc.fpr[i] == roc.fnmr[i] == 0.5


def test_at_fmr_by_hand_and_when_impostors_are_too_few():
    # impostors at 0.4, 0.7, 0.8, 0.9: FMR stays 1/4 up to 0.6, where every genuine pair is accepted
    point = at_fmr(D, Y, 0.25)
    assert (point.threshold, point.fmr, point.fnmr) == (0.6, 0.25, 0.0)
    assert (point.n_genuine, point.n_impostor, point.measurable) == (3, 4, True)
    below = at_fmr(D, Y, 0.24)  # no impostor accepted: up to 0.2, the genuine 0.6 rejected
    assert (below.threshold, below.fmr, below.fnmr) == (0.2, 0.0, pytest.approx(1 / 3))
    assert not at_fmr(D, Y, 1e-2).measurable  # 4 impostor pairs cannot measure 1 %
    rng = np.random.default_rng(0)
    d = np.r_[rng.normal(0.3, 0.1, 500), rng.normal(0.8, 0.1, 1000)]
    y = np.r_[np.ones(500), np.zeros(1000)]
    point = at_fmr(d, y, 1e-2)
    assert point.fmr == np.mean(d[y == 0] <= point.threshold) <= 1e-2
    assert point.fnmr == pytest.approx(np.mean(d[y == 1] > point.threshold))
    assert at_fmr(d, y, 1e-3).measurable
    assert not at_fmr(d, y, 1e-4).measurable


def test_failed_comparisons_count_as_errors():
    d = np.array([0.1, np.inf, 0.9, np.inf])
    y = np.array([1, 1, 0, 0])
    # the failed genuine pair is a false non-match, the failed impostor pair is not a false match
    roc = roc_curve(d, y)
    assert roc.tpr.max() == pytest.approx(0.5)
    assert roc.fpr.max() == pytest.approx(0.5)
    # accuracy: both failed pairs are wrong decisions whatever the threshold
    assert accuracy(d, y, 0.5) == pytest.approx(0.5)
    t, acc = best_threshold(d, y)
    assert acc == pytest.approx(0.5)
    assert 0.1 <= t < 0.9
    # ROC (0, 0) -> (0, 0.5) -> (0.5, 0.5), closed to (1, 1): 0.25 + 0.375
    assert auc(roc) == pytest.approx(0.625)
    rate, t = eer(d, y)
    assert (rate, t) == (0.5, 0.9)  # half the genuine pairs can never be matched


@pytest.mark.parametrize("bad", [[0.1, np.nan], [0.1, -np.inf], [np.inf, np.inf]])
def test_invalid_distances_are_refused(bad):
    with pytest.raises(ValueError):
        roc_curve(bad, [1, 0])


def test_one_class_is_refused():
    with pytest.raises(ValueError, match="both"):
        roc_curve([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError):
        roc_curve([0.1, 0.2], [1, 0, 1])


scores = st.lists(
    st.tuples(st.integers(0, 40).map(lambda v: v / 40), st.booleans()),  # coarse values force ties
    min_size=2,
    max_size=80,
).filter(lambda rows: any(r[1] for r in rows) and not all(r[1] for r in rows))


@settings(max_examples=150, deadline=None)
@given(scores)
def test_roc_and_auc_agree_with_sklearn(rows):
    d = np.array([r[0] for r in rows])
    y = np.array([int(r[1]) for r in rows])
    roc = roc_curve(d, y)
    fpr, tpr, thr = sk_roc_curve(y, -d, drop_intermediate=False)
    np.testing.assert_allclose(roc.fpr, fpr)
    np.testing.assert_allclose(roc.tpr, tpr)
    np.testing.assert_allclose(roc.thresholds[1:], -thr[1:])
    assert auc(roc) == pytest.approx(roc_auc_score(y, -d))


@settings(max_examples=150, deadline=None)
@given(scores)
def test_best_threshold_is_the_best_accuracy(rows):
    d = np.array([r[0] for r in rows])
    y = np.array([int(r[1]) for r in rows])
    t, acc = best_threshold(d, y)
    assert accuracy(d, y, t) == pytest.approx(acc)
    brute = max(accuracy(d, y, c) for c in np.r_[-1.0, d])
    assert acc == pytest.approx(brute)


@settings(max_examples=100, deadline=None)
@given(scores, st.sampled_from([0.5, 0.25, 0.1]))
def test_fnmr_at_fmr_is_the_least_fnmr_within_the_fmr(rows, target):
    d = np.array([r[0] for r in rows])
    y = np.array([int(r[1]) for r in rows])
    found = at_fmr(d, y, target)
    assert found.measurable == ((y == 0).sum() >= np.ceil(1 / target))
    fnmr, t = found.fnmr, found.threshold
    assert np.mean(d[y == 0] <= t) <= target
    candidates = [np.mean(d[y == 1] > c) for c in np.r_[-1.0, d] if np.mean(d[y == 0] <= c) <= target]
    assert fnmr == pytest.approx(min(candidates))


@settings(max_examples=100, deadline=None)
@given(scores)
def test_eer_lies_between_the_two_error_rates(rows):
    d = np.array([r[0] for r in rows])
    y = np.array([int(r[1]) for r in rows])
    rate, _ = eer(d, y)
    roc = roc_curve(d, y)
    # the EER is reached where the curves cross: no ROC point has both errors below it
    assert 0.0 <= rate <= 1.0
    assert not np.any((roc.fpr < rate - 1e-9) & (roc.fnmr < rate - 1e-9))


# -- the k-fold protocol --------------------------------------------------------


def test_assign_folds_is_stratified_and_seeded():
    y = np.r_[np.ones(300), np.zeros(300)]
    folds = assign_folds(y, 10, seed=3)
    for f in range(10):
        assert (y[folds == f] == 1).sum() == 30
        assert (y[folds == f] == 0).sum() == 30
    assert np.array_equal(folds, assign_folds(y, 10, seed=3))
    assert not np.array_equal(folds, assign_folds(y, 10, seed=4))
    with pytest.raises(ValueError):
        assign_folds(y, 1)


def test_kfold_finds_the_known_threshold():
    # genuine pairs uniform on [0, 0.6), impostors uniform on (0.6, 1.2]: separable at 0.6
    rng = np.random.default_rng(0)
    d = np.r_[rng.uniform(0.0, 0.59, 300), rng.uniform(0.61, 1.2, 300)]
    y = np.r_[np.ones(300), np.zeros(300)]
    folds = assign_folds(y, 10)
    result = kfold_accuracy(d, y, folds)
    assert len(result.accuracies) == 10
    assert result.mean == 1.0 and result.std == 0.0
    assert np.all((result.thresholds > 0.58) & (result.thresholds < 0.62))


def test_kfold_on_overlapping_scores_matches_the_bayes_threshold():
    # two unit-variance normals at 0 and 2: the best threshold is 1 and accuracy Phi(1) ~ 0.841
    rng = np.random.default_rng(1)
    d = np.r_[rng.normal(0, 1, 3000), rng.normal(2, 1, 3000)]
    y = np.r_[np.ones(3000), np.zeros(3000)]
    result = kfold_accuracy(d, y, assign_folds(y, 10))
    assert result.threshold == pytest.approx(1.0, abs=0.1)
    assert result.mean == pytest.approx(0.841, abs=0.02)
    assert 0 < result.std < 0.05


def test_kfold_held_out_threshold_is_not_picked_on_the_test_fold():
    # fold 0 alone would prefer a threshold of 0.5; the other folds say 0.2
    d = np.array([0.1, 0.3, 0.1, 0.3, 0.1, 0.3, 0.4, 0.6])
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    folds = np.array([1, 1, 2, 2, 3, 3, 0, 0])
    result = kfold_accuracy(d, y, folds)
    assert result.thresholds[0] == pytest.approx(0.2)
    assert result.accuracies[0] == 0.5  # 0.4 genuine rejected at 0.2, 0.6 impostor rejected


def test_kfold_counts_failures_on_the_test_fold():
    d = np.array([0.1, 0.9, 0.1, 0.9, np.inf, 0.9])
    y = np.array([1, 0, 1, 0, 1, 0])
    result = kfold_accuracy(d, y, np.array([0, 0, 1, 1, 2, 2]))
    assert result.accuracies.tolist() == [1.0, 1.0, 0.5]
