"""LFW View 1 test people at the packaged operating points: the README's decision figures.

The thresholds come from the training people's curves; these tests measure them on
the test people with the functions of ``bench/decisions.py`` that print the README's
tables, and hold the figures reported there.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from facegate.decisions import scoring_for

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
    """The README's table "Verification, one photo each side", from the function that prints it."""
    assert len(test_people.labels) == 1549 and int((~test_people.ok).sum()) == 0  # the CNN fallback finds every face
    scoring = scoring_for("dlib-resnet", "euclidean")
    assert scoring.kind == "asnorm"
    rows, genuine, impostor = bench.verification_one_photo(test_people, scoring, fmrs=(1e-3,))
    assert (genuine, impostor) == (983, 1_197_943)
    [(target, threshold, fmr, fnmr)] = rows
    assert target == 1e-3 and threshold == pytest.approx(-2.2301, abs=5e-5)  # the README's row
    assert round(fmr * impostor) == 1355 and f"{fmr:.2%}" == "0.11%"  # the target holds
    assert round(fnmr * genuine) == 39 and f"{fnmr:.2%}" == "3.97%"


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
        [(_, _, _, fnmr)], genuine, _ = bench.verification_one_photo(test_people, scoring, fmrs=(1e-3,))
        results[normalise] = round(fnmr * genuine)
    assert results == {False: 51, True: 39}  # the README: 5.19% and 3.97% of 983 genuine pairs
