"""The embedding cache: computed once, keyed by file identity, failures kept, files atomic."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

import facegate.evaluate.cache as cache
from facegate.errors import ImageNotFoundError, NoFaceError
from facegate.evaluate.cache import EmbeddingCache, default_cache_dir, embed_files, error_class

ARGS = {"model": "mean-colour", "detector": "flat", "workers": 1}


@pytest.fixture
def photos(tmp_path):
    paths = []
    for i, rgb in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 0)]):  # the black one has no "face"
        path = tmp_path / f"p{i}.png"
        Image.fromarray(np.full((16, 16, 3), rgb, np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def counted(monkeypatch):
    """Count the images that reach the pipeline."""
    seen: list[str] = []
    real = cache.represent_many

    def spy(images, **kwargs):
        seen.extend(str(i) for i in images)
        return real(images, **kwargs)

    monkeypatch.setattr(cache, "represent_many", spy)
    return seen


def test_embeddings_and_failures(photos, tmp_path, counted):
    e = embed_files(photos, cache_dir=tmp_path / "c", **ARGS)
    assert e.ok.tolist() == [True, True, False]
    np.testing.assert_allclose(e.vectors[0], [1, 0, 0], atol=1e-6)
    assert np.isnan(e.vectors[2]).all()
    assert e.errors[2].startswith("NoFaceError")
    assert error_class(e.errors[2]) is NoFaceError
    assert e.fte_rate == pytest.approx(1 / 3)
    assert e.boxes[0].tolist() == [0, 0, 16, 16] and e.boxes[2].tolist() == [-1, -1, -1, -1]
    assert list(e.failures()) == [photos[2]]
    assert len(counted) == 3


def test_second_run_is_served_from_the_cache(photos, tmp_path, counted):
    first = embed_files(photos, cache_dir=tmp_path / "c", **ARGS)
    counted.clear()
    again = embed_files(list(reversed(photos)), cache_dir=tmp_path / "c", **ARGS)
    assert counted == []  # failures are cached too
    np.testing.assert_array_equal(again.vectors[::-1][:2], first.vectors[:2])
    assert again.errors[0] == first.errors[2]


def test_a_changed_file_is_embedded_again(photos, tmp_path, counted):
    embed_files(photos, cache_dir=tmp_path / "c", **ARGS)
    counted.clear()
    Image.fromarray(np.full((16, 16, 3), (0, 0, 255), np.uint8)).save(photos[0])
    st = os.stat(photos[0])
    os.utime(photos[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    e = embed_files(photos, cache_dir=tmp_path / "c", **ARGS)
    assert counted == [photos[0]]
    np.testing.assert_allclose(e.vectors[0], [0, 0, 1], atol=1e-6)


def test_one_file_per_configuration(photos, tmp_path):
    embed_files(photos, cache_dir=tmp_path / "c", tta=False, **ARGS)
    embed_files(photos, cache_dir=tmp_path / "c", tta=True, **ARGS)
    embed_files(photos, cache_dir=tmp_path / "c", tta=False, upsample=1, **ARGS)
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == [
        "mean-colour__flat__plain__auto__main-face.npz",
        "mean-colour__flat__plain__up1__main-face.npz",
        "mean-colour__flat__tta__auto__main-face.npz",
    ]


def test_no_cache_writes_nothing(photos, tmp_path, counted):
    embed_files(photos, cache_dir=tmp_path / "c", use_cache=False, **ARGS)
    embed_files(photos, cache_dir=tmp_path / "c", use_cache=False, **ARGS)
    assert not (tmp_path / "c").exists()
    assert len(counted) == 6


def test_corrupt_cache_is_ignored_and_rewritten(photos, tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    EmbeddingCache(folder, "mean-colour", "flat").path.write_bytes(b"garbage")
    e = embed_files(photos, cache_dir=folder, **ARGS)
    assert e.ok.sum() == 2
    assert len(EmbeddingCache(folder, "mean-colour", "flat")) == 3


def test_saves_merge_with_other_writers(photos, tmp_path):
    a = EmbeddingCache(tmp_path, "mean-colour", "flat")
    b = EmbeddingCache(tmp_path, "mean-colour", "flat")
    a.put("k1", np.ones(3), "", np.zeros(4))
    a.save()
    b.put("k2", np.zeros(3), "NoFaceError: x", np.zeros(4))
    b.save()
    merged = EmbeddingCache(tmp_path, "mean-colour", "flat")
    assert merged.get("k1") is not None and merged.get("k2")[1] == "NoFaceError: x"
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_files_are_a_user_error(tmp_path):
    with pytest.raises(ImageNotFoundError, match=r"nope\.png"):
        embed_files([str(tmp_path / "nope.png")], cache_dir=tmp_path, **ARGS)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEGATE_CACHE", str(tmp_path / "x"))  # every cache of facegate moves: embeddings below it
    assert default_cache_dir() == tmp_path / "x" / "embeddings"
    monkeypatch.delenv("FACEGATE_CACHE")
    assert default_cache_dir().parts[-3:] == (".cache", "facegate", "embeddings")
