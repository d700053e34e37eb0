"""Omniglot loader (official layout, from the shared zips) and the few-shot samplers."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from facegate.datasets.download import file_digest
from facegate.learn.omniglot_data import (
    SHA256,
    URLS,
    load_official_runs,
    load_omniglot,
    prepare,
)
from facegate.learn.training.samplers import EpisodeSampler, PairSampler, TripletSampler, alphabet_split

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omniglot"
needs_data = pytest.mark.skipif(
    not (DATA / "images_background.zip").is_file(),
    reason=f"Omniglot zips not found in {DATA} (../shared/data/omniglot from the repo root)",
)


@pytest.fixture(scope="module")
def cache_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Decoded arrays cached under .pytest_cache, so reruns skip the PNG decoding."""
    cache = getattr(request.config, "cache", None)
    return Path(cache.mkdir("facegate-omniglot")) if cache is not None else tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def background(cache_dir: Path):
    if not (DATA / "images_background.zip").is_file():
        pytest.skip(f"Omniglot not found in {DATA}")
    return load_omniglot("background", DATA, cache_dir=cache_dir)


@pytest.mark.data
@needs_data
def test_background_counts(background) -> None:
    assert background.images.shape == (964, 20, 105, 105)
    assert background.images.dtype == bool
    assert len(background.alphabet_names) == 30
    assert len(set(background.characters)) == 964
    # ink is the minority of pixels, and every image has some
    assert 0.02 < background.images.mean() < 0.15
    assert background.images.any(axis=(2, 3)).all()


@pytest.mark.data
@needs_data
def test_evaluation_counts_and_cache(cache_dir: Path) -> None:
    first = load_omniglot("evaluation", DATA, cache_dir=cache_dir)
    assert first.images.shape == (659, 20, 105, 105)
    assert len(first.alphabet_names) == 20
    assert list((cache_dir / "omniglot").glob("evaluation-*.npy"))
    again = load_omniglot("evaluation", DATA, cache_dir=cache_dir)
    assert np.array_equal(first.images, again.images)
    assert first.characters == again.characters


@pytest.mark.data
@needs_data
def test_drawer_axis_follows_file_names(background) -> None:
    name = background.characters[0]  # "Alphabet/characterNN"
    with zipfile.ZipFile(DATA / "images_background.zip") as zf:
        files = sorted(n for n in zf.namelist() if n.startswith(f"images_background/{name}/") and n.endswith(".png"))
        drawer_7 = next(f for f in files if f.endswith("_07.png"))
        from facegate.learn.omniglot_data import _decode_png

        assert np.array_equal(_decode_png(zf.read(drawer_7)), background.images[0, 6])


@pytest.mark.data
@needs_data
def test_official_runs() -> None:
    runs = load_official_runs(DATA)
    assert len(runs) == 20
    for run in runs:
        assert run.training.shape == (20, 105, 105) and run.test.shape == (20, 105, 105)
        assert sorted(run.answers.tolist()) == list(range(20))  # one test item per class


@pytest.mark.data
@needs_data
def test_checksums_are_the_shared_files() -> None:
    assert set(URLS) == set(SHA256)
    assert all(u.startswith("https://github.com/brendenlake/omniglot/raw/master/python/") for u in URLS.values())
    for name, digest in SHA256.items():
        assert file_digest(DATA / name, "sha256") == digest, name


def test_prepare_box_filter() -> None:
    rng = np.random.default_rng(0)
    ink = rng.random((3, 105, 105)) > 0.7
    x = prepare(ink, 35)
    assert x.shape == (3, 35, 35) and x.dtype == np.float32
    assert np.allclose(x, ink.reshape(3, 35, 3, 35, 3).mean(axis=(2, 4)), atol=1e-6)
    assert np.isclose(prepare(ink, 28).mean(), ink.mean(), atol=1e-5)  # area preserved
    centred = prepare(np.pad(np.ones((1, 10, 10), bool), ((0, 0), (0, 95), (0, 95))), 105, center=True)[0]
    rows, cols = np.flatnonzero(centred.any(1)), np.flatnonzero(centred.any(0))
    assert (rows[0] + rows[-1]) / 2 == pytest.approx(52, abs=1) and (cols[0] + cols[-1]) / 2 == pytest.approx(52, abs=1)


def test_prepare_fit_scales_and_centres_the_ink() -> None:
    small = np.zeros((2, 105, 105), bool)
    small[0, 5:35, 10:25] = True  # 30 x 15 box in a corner
    fitted = prepare(small, 105, fit=0.8)
    rows, cols = np.flatnonzero(fitted[0].any(1)), np.flatnonzero(fitted[0].any(0))
    assert rows[-1] - rows[0] + 1 == pytest.approx(84, abs=1)  # longer side: 80% of 105
    assert cols[-1] - cols[0] + 1 == pytest.approx(42, abs=1)  # aspect ratio kept
    assert (rows[0] + rows[-1]) / 2 == pytest.approx(52, abs=1) and (cols[0] + cols[-1]) / 2 == pytest.approx(52, abs=1)
    assert not fitted[1].any()  # a blank image stays blank
    dot = np.zeros((1, 105, 105), bool)
    dot[0, 50:52, 50:52] = True
    assert prepare(dot, 105, fit=0.8)[0].sum() <= 2 * 2 * 9 + 1e-3  # at most 3x up
    assert prepare(small, 28, fit=0.8).shape == (2, 28, 28)


def test_pair_sampler_balance() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(10), 5)
    sampler = PairSampler(50, 20, groups, within_group=0.5)
    b = sampler.sample(1000, rng)
    assert b.same.sum() == 500
    same, diff = b.same, ~b.same
    assert (b.class1[same] == b.class2[same]).all()
    assert (b.example1[same] != b.example2[same]).all()
    assert (b.class1[diff] != b.class2[diff]).all()
    within = groups[b.class1[diff]] == groups[b.class2[diff]]
    # ~50% forced within alphabet, plus chance (4/49 of the rest)
    assert 0.4 < within.mean() < 0.7


def test_triplet_and_pk_sampler() -> None:
    rng = np.random.default_rng(1)
    sampler = TripletSampler(30, 20)
    ca, ea, ep, cn, _ = sampler.sample(500, rng)
    assert (ea != ep).all() and (ca != cn).all()
    classes, examples = sampler.sample_pk(8, 4, rng)
    assert len(set(classes.tolist())) == 8 and len(classes) == 32
    pairs = set(zip(classes.tolist(), examples.tolist(), strict=True))
    assert len(pairs) == 32  # no image twice


def test_episode_sampler() -> None:
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(4), 25)
    sampler = EpisodeSampler(100, 20, n_way=20, k_shot=5, n_query=3, group_ids=groups, within_group=1.0)
    for _ in range(20):
        ep = sampler.sample(rng)
        assert len(set(ep.classes.tolist())) == 20
        assert len(set(groups[ep.classes].tolist())) == 1  # all from one alphabet
        assert ep.support.shape == (20, 5) and ep.query.shape == (20, 3)
        for s, q in zip(ep.support, ep.query, strict=True):
            assert not set(s) & set(q)


@pytest.mark.data
@needs_data
def test_alphabet_split_is_class_disjoint(background) -> None:
    train, val = alphabet_split(background.alphabets, 5, seed=0)
    assert len(val) == 5 and len(train) == 25 and not set(train) & set(val)
    a, b = background.subset(train), background.subset(val)
    assert a.n_characters + b.n_characters == 964
    assert not set(a.characters) & set(b.characters)
    assert alphabet_split(background.alphabets, 5, seed=0) == (train, val)  # deterministic
