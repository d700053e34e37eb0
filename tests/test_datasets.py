"""Data-set loaders: folder layouts, generated pairs, LFW pair files, checksummed downloads."""

from __future__ import annotations

import hashlib
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegate.datasets.download import ChecksumError, RemoteFile, download, verify_file
from facegate.datasets.folders import FaceSet, is_image_file, load_folder
from facegate.datasets.lfw import LFW_FILES, read_pairs
from facegate.datasets.pairs import load_pairs, make_pairs, read_generic_pairs, write_pairs
from tests.conftest import data_dir


def _image(path: Path, fmt: str = "PNG", value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path, format=fmt)


def test_person_folders_layout(tmp_path):
    for person, n in (("ann", 3), ("bob", 2)):
        for i in range(1, n + 1):
            _image(tmp_path / person / f"{i}.pgm", "PPM")
    _image(tmp_path / "ann" / "10.jpg", "JPEG")
    (tmp_path / "ann" / "notes.txt").write_text("not a photo")
    (tmp_path / "empty").mkdir()
    faces = load_folder(tmp_path)
    assert faces.layout == "person-folders"
    assert faces.paths == ["ann/1.pgm", "ann/2.pgm", "ann/3.pgm", "ann/10.jpg", "bob/1.pgm", "bob/2.pgm"]
    assert faces.people == ["ann", "bob"]
    assert faces.files()[0] == str(tmp_path / "ann" / "1.pgm")


def test_flat_prefix_layout_finds_extensionless_images(tmp_path):
    for person in ("subject01", "subject02"):
        for condition in ("happy", "sad", "glasses"):
            _image(tmp_path / f"{person}.{condition}", "GIF")
    (tmp_path / "LABELS.txt").write_text("subject01 ...")
    (tmp_path / "README").write_text("no image")
    faces = load_folder(tmp_path)
    assert faces.layout == "flat-prefix"
    assert len(faces) == 6
    assert faces.counts() == {"subject01": 3, "subject02": 3}
    assert "LABELS.txt" not in faces.paths


def test_no_layout_fits(tmp_path):
    _image(tmp_path / "a.png")
    _image(tmp_path / "b.png")  # one photo per "person": not a labelled set
    with pytest.raises(ValueError, match="no labelled photos"):
        load_folder(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_folder(tmp_path / "missing")


def test_is_image_file_uses_magic_bytes(tmp_path):
    _image(tmp_path / "x.cond", "GIF")
    (tmp_path / "y.cond").write_bytes(b"hello world!")
    assert is_image_file(tmp_path / "x.cond")
    assert not is_image_file(tmp_path / "y.cond")
    assert not is_image_file(tmp_path)


def test_select_people_with_most_photos():
    counts = {"a": 5, "b": 3, "c": 3, "d": 1}
    labels = [c for c, n in counts.items() for _ in range(n)]
    faces = FaceSet(Path("/r"), [f"{c}{i}" for i, c in enumerate(labels)], labels, "test")
    assert faces.select(people=2).people == ["a", "b"]  # b and c tie at 3: the name decides
    assert faces.select(min_photos=2).people == ["a", "b", "c"]
    assert len(faces.select(people=1)) == 5
    with pytest.raises(ValueError):
        FaceSet(Path("/r"), ["x"], [], "test")


def _toy_set(n_people: int = 6, per_person: int = 4) -> FaceSet:
    labels = [f"p{i}" for i in range(n_people) for _ in range(per_person)]
    return FaceSet(Path("/r"), [f"{lab}/{j}.jpg" for j, lab in enumerate(labels)], labels, "test")


def test_make_pairs_all_genuine_and_balanced_impostors():
    faces = _toy_set()
    pairs = make_pairs(faces, folds=3, seed=1)  # every pair of photos
    genuine = [p for p in pairs if p.same]
    assert len(genuine) == 6 * 6  # 4 choose 2 per person
    assert len(pairs) == 24 * 23 // 2
    label = dict(zip(faces.paths, faces.labels, strict=True))
    assert all((label[p.first] == label[p.second]) == p.same for p in pairs)
    assert len({(p.first, p.second) for p in pairs}) == len(pairs)
    balanced = make_pairs(faces, n_genuine=20, seed=1)
    assert sum(p.same for p in balanced) == 20 and sum(not p.same for p in balanced) == 20


def test_make_pairs_is_seeded_and_folded():
    faces = _toy_set(30, 5)
    a = make_pairs(faces, n_genuine=100, n_impostor=100, folds=10, seed=7)
    assert a == make_pairs(faces, n_genuine=100, n_impostor=100, folds=10, seed=7)
    assert a != make_pairs(faces, n_genuine=100, n_impostor=100, folds=10, seed=8)
    folds = np.array([p.fold for p in a])
    same = np.array([p.same for p in a])
    for f in range(10):
        assert (same[folds == f]).sum() == 10 and (~same[folds == f]).sum() == 10
    label = dict(zip(faces.paths, faces.labels, strict=True))
    impostors = [p for p in a if not p.same]
    assert all(label[p.first] != label[p.second] for p in impostors)
    assert len({(p.first, p.second) for p in impostors}) == 100  # sparse sampling, no repeats


def test_generic_pair_file_round_trip(tmp_path):
    pairs = make_pairs(_toy_set(), n_genuine=5, folds=2, seed=0)
    path = write_pairs(pairs, tmp_path / "pairs.tsv")
    assert read_generic_pairs(path) == pairs
    assert load_pairs(path) == pairs
    (tmp_path / "bad.tsv").write_text("# facegate pairs\na\tb\tyes\t0\n")
    with pytest.raises(ValueError, match="line 2"):
        read_generic_pairs(tmp_path / "bad.tsv")


def test_lfw_view2_format(tmp_path):
    lines = ["2\t1", "Ann\t1\t2", "Ann\t1\tBob\t3", "Cid\t2\t4", "Cid\t1\tDee\t1"]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    pairs = load_pairs(tmp_path / "pairs.txt")
    assert [(p.first, p.second, p.same, p.fold) for p in pairs] == [
        ("Ann/Ann_0001.jpg", "Ann/Ann_0002.jpg", True, 0),
        ("Ann/Ann_0001.jpg", "Bob/Bob_0003.jpg", False, 0),
        ("Cid/Cid_0002.jpg", "Cid/Cid_0004.jpg", True, 1),
        ("Cid/Cid_0001.jpg", "Dee/Dee_0001.jpg", False, 1),
    ]
    (tmp_path / "short.txt").write_text("2\t1\nAnn\t1\t2\n")
    with pytest.raises(ValueError, match="promises"):
        read_pairs(tmp_path / "short.txt")


# -- downloads (file:// URLs: tests never reach the network) ----------------------


def test_download_verifies_sha256_and_md5(tmp_path):
    src = tmp_path / "src" / "data.bin"
    src.parent.mkdir()
    src.write_bytes(b"facegate" * 1000)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    for remote in (RemoteFile("data.bin", src.as_uri(), sha256=sha), RemoteFile("data.bin", src.as_uri(), md5=md5)):
        out = download(remote, tmp_path / "dest")
        assert out.read_bytes() == src.read_bytes()
        verify_file(out, remote)
        out.unlink()


def test_download_refuses_a_wrong_checksum_and_leaves_nothing(tmp_path):
    src = tmp_path / "data.bin"
    src.write_bytes(b"tampered")
    remote = RemoteFile("data.bin", src.as_uri(), sha256="0" * 64)
    with pytest.raises(ChecksumError, match="sha256"):
        download(remote, tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_download_skips_a_verified_file(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "x.txt").write_bytes(b"ok")
    remote = RemoteFile("x.txt", "file:///nonexistent/x.txt", sha256=hashlib.sha256(b"ok").hexdigest())
    assert download(remote, dest) == dest / "x.txt"  # no fetch attempted
    with pytest.raises(ValueError):
        RemoteFile("x", "file:///x")


def test_lfw_files_are_listed_with_official_addresses():
    assert set(LFW_FILES) >= {"lfw-deepfunneled.tgz", "pairs.txt", "pairsDevTrain.txt", "pairsDevTest.txt"}
    for remote in LFW_FILES.values():
        assert remote.url == f"http://vis-www.cs.umass.edu/lfw/{remote.name}"
        assert remote.md5 and len(remote.md5) == 32


@pytest.mark.data
@pytest.mark.parametrize("name", ["pairsDevTrain.txt", "pairsDevTest.txt"])
def test_lfw_checksums_match_the_shared_copies(name):
    path = data_dir("lfw") / name
    verify_file(path, LFW_FILES[name])  # sha256
    md5_only = RemoteFile(name, "", md5=LFW_FILES[name].md5)
    verify_file(path, md5_only)


@pytest.mark.data
def test_shared_sets_are_detected():
    orl = load_folder(data_dir("orl"))
    assert (orl.layout, len(orl.people), len(orl)) == ("person-folders", 40, 400)
    yale = load_folder(data_dir("yale"))
    assert (yale.layout, len(yale.people), len(yale)) == ("flat-prefix", 15, 164)
    lfw = load_folder(data_dir("lfw", "images"))
    assert lfw.layout == "person-folders" and len(lfw) == 4992
    top = lfw.select(people=5)
    assert len(top.people) == 5 and min(top.counts().values()) >= 7


def test_combinations_helper_matches_itertools():
    faces = _toy_set(3, 3)
    genuine = {(p.first, p.second) for p in make_pairs(faces, n_genuine=None, n_impostor=0) if p.same}
    expected = set()
    for person in faces.people:
        idx = [p for p, lab in zip(faces.paths, faces.labels, strict=True) if lab == person]
        expected |= set(combinations(idx, 2))
    assert genuine == expected


def test_lfw_view2_ten_folds_of_300_and_300(tmp_path):
    lines = ["10\t300"]
    for fold in range(10):
        lines += [f"P{fold}_{i}\t1\t2" for i in range(300)]
        lines += [f"P{fold}_{i}\t1\tQ{fold}_{i}\t1" for i in range(300)]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    pairs = read_pairs(tmp_path / "pairs.txt")
    assert len(pairs) == 6000
    folds = np.array([p.fold for p in pairs])
    same = np.array([p.same for p in pairs])
    for f in range(10):
        assert same[folds == f].sum() == 300 and (~same[folds == f]).sum() == 300
    assert pairs[300].first == "P0_0/P0_0_0001.jpg" and pairs[300].second == "Q0_0/Q0_0_0001.jpg"
