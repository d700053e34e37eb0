"""LFW View 1 test people at the packaged operating points: the README's decision figures.

The thresholds come from the training people's curves; these tests measure them on
the test people with the functions of ``bench/decisions.py`` that print the README's
tables, and hold the figures reported there.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from facegate.decisions import scoring_for, verification_point

from .conftest import REPO

pytestmark = [pytest.mark.data, pytest.mark.slow]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_decisions", REPO / "bench" / "decisions.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def test_people(bench, lfw_dev_test, embedding_cache):
    lfw, _, _ = lfw_dev_test  # embeds the same 1,549 images into the session cache
    return bench.load(lfw, "pairsDevTest.txt", embedding_cache)


def test_verification_at_fmr_1e3_on_the_test_people(bench, test_people):
    assert len(test_people.labels) == 1549 and int((~test_people.ok).sum()) == 0  # the CNN fallback finds every face
    scoring = scoring_for("dlib-resnet", "euclidean")
    assert scoring.kind == "asnorm"
    scores, same = bench.all_pairs(test_people, bench.Scorer("euclidean", scoring.norm))
    assert int(same.sum()) == 983 and int((~same).sum()) == 1_197_943
    fmr, fnmr = bench.rates(scores, same, verification_point(scoring, fmr=1e-3).threshold)
    print(f"measured FMR {fmr:.5f}, FNMR {fnmr:.4f}")
    assert fmr == pytest.approx(1e-3, rel=0.5)  # the target holds on people never seen
    assert fnmr == pytest.approx(0.0397, abs=0.002)  # the README's figure (39 of 983)


def test_identification_fpir_holds_at_the_size_aware_threshold(bench, test_people):
    scoring = scoring_for("dlib-resnet", "euclidean")
    fnir, fpir, _, mated, strangers = bench.identification(test_people, scoring, "both", 50, 3, 0.01, draws=2)
    assert (mated, strangers) > (0, 1000)
    assert 0.005 <= fpir <= 0.02  # within a factor of 2 of the 1% asked for
    assert fnir <= 0.03


def test_plain_distance_misses_more_than_asnorm(bench, test_people):
    """The lever that the default uses pays on the test people too."""
    results = {}
    for normalise in (False, True):
        scoring = scoring_for("dlib-resnet", "euclidean", normalise=normalise)
        scores, same = bench.all_pairs(test_people, bench.Scorer("euclidean", scoring.norm))
        results[normalise] = bench.rates(scores, same, verification_point(scoring, fmr=1e-3).threshold)[1]
    assert results[False] == pytest.approx(0.0519, abs=0.002)
    assert results[True] < results[False] - 0.01
    assert np.isfinite(list(results.values())).all()
