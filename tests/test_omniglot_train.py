"""Training, checkpoints, evaluation protocols, CLI and the ``omniglot`` embedding model.

The training runs are tiny (a few alphabets, a few dozen steps) so the file stays
under about two minutes on two shared CPU cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from facegate.learn.nets.omniglot import (  # noqa: E402
    ConvEmbedding,
    KochSiamese,
    NetSpec,
    build_embedding,
    count_parameters,
    load_checkpoint,
    save_checkpoint,
)
from facegate.learn.omniglot_data import load_omniglot  # noqa: E402
from facegate.learn.oneshot import (  # noqa: E402
    EmbeddingScorer,
    NetScorer,
    embed_split,
    n_way_accuracy,
    official_runs_accuracy,
    pair_evaluation,
)
from facegate.learn.training.omniglot import OmniglotTrainConfig, train_omniglot  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omniglot"
HAVE_DATA = (DATA / "images_background.zip").is_file() and (DATA / "images_evaluation.zip").is_file()
needs_data = pytest.mark.skipif(
    not HAVE_DATA, reason=f"Omniglot zips not found in {DATA} (../shared/data/omniglot from the repo root)"
)


def test_koch_siamese_original_size() -> None:
    # Koch et al.: 4 conv layers, 4096-unit sigmoid layer, L1 head -> 38,951,745 parameters
    net = KochSiamese(dense=4096)
    assert count_parameters(net) == 38_951_745
    assert count_parameters(KochSiamese(dense=512)) < 6_000_000
    x = torch.rand(2, 1, 105, 105)
    assert net(x, x).shape == (2,)
    assert net.embedding(x).shape == (2, 4096)


def test_conv_embedding_shapes() -> None:
    net = ConvEmbedding(28, (64, 64, 64, 64))
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 64)
    net = ConvEmbedding(28, (32, 64), dim=16, normalize=True)
    z = net(torch.rand(3, 1, 28, 28))
    assert z.shape == (3, 16) and torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError):
        ConvEmbedding(8, (8, 8, 8, 8, 8))


def test_augmentation() -> None:
    from facegate.learn.training.augment import random_affine, rotate_classes

    x = torch.zeros(3, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0  # a vertical bar
    gen = torch.Generator().manual_seed(0)
    same = random_affine(x, gen, rotation_deg=0, shear=0, scale=(1, 1), translate=0)
    assert torch.allclose(same, x, atol=1e-5)  # no distortion: the identity map
    moved = random_affine(x, torch.Generator().manual_seed(1))
    assert moved.shape == x.shape and not torch.allclose(moved, x)
    assert torch.allclose(moved.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.35)  # small: the ink stays in frame

    images = torch.rand(2, 3, 5, 5)  # 2 classes, 3 drawers
    rotated, groups = rotate_classes(images, np.array([0, 1]))
    assert rotated.shape == (8, 3, 5, 5) and groups is not None and list(groups) == [0, 1, 2, 3, 4, 5, 6, 7]
    assert torch.equal(rotated[2], torch.rot90(images[0], 1, dims=(-2, -1)))


def test_time_budget_means_as_many_epochs_as_fit() -> None:
    assert OmniglotTrainConfig().epochs == 20
    assert OmniglotTrainConfig(time_budget=60).epochs >= 100_000
    assert OmniglotTrainConfig(time_budget=60, epochs=3).epochs == 3


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    spec = NetSpec(channels=(8, 8, 8, 8), metric="euclidean")
    net = build_embedding(spec).eval()
    path = save_checkpoint(tmp_path / "c.pt", spec, net, config={"method": "proto"}, metrics={"x": 1})
    loaded = load_checkpoint(path)
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(net(x), loaded.net(x))
    assert loaded.spec == spec and loaded.config == {"method": "proto"} and loaded.metrics == {"x": 1}
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"bad\.pt is not a facegate Omniglot checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other.pt is not a facegate Omniglot checkpoint \(facegate-omniglot/1\)"):
        load_checkpoint(tmp_path / "other.pt")


def test_checkpoints_of_the_old_metric_vocabulary_load_as_euclidean(tmp_path: Path) -> None:
    """Before one distance vocabulary, checkpoints said "sqeuclidean"; the order of pairs is the same."""
    spec = NetSpec(channels=(8, 8, 8, 8))
    net = build_embedding(spec).eval()
    path = save_checkpoint(tmp_path / "old.pt", spec, net)
    payload = torch.load(path, weights_only=False)
    payload["spec"]["metric"] = "sqeuclidean"
    torch.save(payload, path)
    assert load_checkpoint(path).spec.metric == "euclidean"


def test_scorers_use_the_distance_registry_and_a_head_is_a_similarity() -> None:
    from facegate.distances import METRICS
    from facegate.learn.nets.omniglot import SiameseHead

    a = np.array([[0.0, 0.0], [3.0, 4.0]], dtype=np.float32)
    b = np.array([[3.0, 4.0], [3.0, 4.0]], dtype=np.float32)
    scorer = EmbeddingScorer(lambda ink: ink)
    assert scorer.metric is not None and scorer.metric.name == "euclidean" and "euclidean" in METRICS
    np.testing.assert_allclose(scorer.pair_scores(a, b), [5.0, 0.0])
    support = np.stack([a, b])[None]  # 1 episode: 2 classes x 2 shots
    query = np.array([[[0.0, 0.0]]], dtype=np.float32)
    # the prototype of class 0 is (1.5, 2), 2.5 away; class 1's is (3, 4), 5 away: closeness is the negated distance
    np.testing.assert_allclose(scorer.class_scores(query, support), [[[-2.5, -5.0]]])
    np.testing.assert_allclose(scorer.class_scores(query, support, "nearest"), [[[0.0, -5.0]]])

    head = SiameseHead(2)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[-1.0, -1.0]]))
        head.fc.bias.fill_(2.0)
    metric = head.as_metric()
    assert metric.higher_is_closer
    siamese = EmbeddingScorer(lambda ink: ink, metric)
    # σ(2 − |Δx| − |Δy|): the same point 0.8808, (0,0) against (3,4) σ(−5) = 0.006693
    np.testing.assert_allclose(siamese.pair_scores(a, b), [0.0066929, 0.8807971], rtol=1e-5)
    np.testing.assert_allclose(metric.as_distances(np.array([0.9])), [-0.9])
    assert metric.accepts(0.9, 0.5) and not metric.accepts(0.1, 0.5)
    # the probability of "same", averaged over the shots: class 0 (1 + σ(−5)·...) as by hand
    expected = [(0.8807971 + 0.0066929) / 2, 0.0066929]
    np.testing.assert_allclose(siamese.class_scores(query, support)[0, 0], expected, rtol=1e-5)


@pytest.fixture(scope="module")
def evaluation():
    if not HAVE_DATA:
        pytest.skip(f"Omniglot not found in {DATA}")
    return load_omniglot("evaluation", DATA)


@pytest.mark.data
@needs_data
def test_n_way_random_model_is_chance_and_oracle_is_perfect(evaluation) -> None:
    rng = np.random.default_rng(0)
    random = EmbeddingScorer(lambda ink: rng.normal(size=(len(ink), 32)))
    emb = embed_split(random, evaluation.images)
    for n_way, episodes in ((5, 4000), (20, 2000)):
        res = n_way_accuracy(emb, random, n_way, 1, episodes, seed=1)
        # chance is 1/N; per-episode accuracy has variance (1/N)(1-1/N)/N
        se = np.sqrt((1 / n_way) * (1 - 1 / n_way) / n_way / episodes)
        assert abs(res.accuracy - 1 / n_way) < 4 * se
        assert res.ci95 == pytest.approx(1.96 * se, rel=0.15)
    pairs = pair_evaluation(emb, random, n_pairs=4000)
    assert abs(pairs.auc - 0.5) < 0.04 and abs(pairs.eer - 0.5) < 0.04

    # oracle: embeddings that are one-hot class codes
    index = {img.tobytes(): c for c, row in enumerate(evaluation.images) for img in row}
    codes = np.eye(evaluation.n_characters, dtype=np.float32)
    oracle = EmbeddingScorer(lambda ink: codes[[index[i.tobytes()] for i in ink]])
    oemb = embed_split(oracle, evaluation.images)
    for n_way, k in ((5, 1), (20, 1), (20, 5)):
        assert n_way_accuracy(oemb, oracle, n_way, k, 300, seed=2).accuracy == 1.0
    assert pair_evaluation(oemb, oracle, n_pairs=2000).accuracy == 1.0
    within = n_way_accuracy(oemb, oracle, 20, 1, 200, group_ids=evaluation.alphabet_ids)
    assert within.accuracy == 1.0 and within.within_alphabet


@pytest.mark.data
@needs_data
def test_official_runs_pixel_baseline() -> None:
    from facegate.learn.omniglot_data import load_official_runs

    runs = load_official_runs(DATA)
    pixels = EmbeddingScorer(lambda ink: ink.reshape(len(ink), -1).astype(np.float32))
    res = official_runs_accuracy(pixels, runs)
    # nearest neighbour on raw pixels is weak but far above 1/20 (Lake et al.: ~18-26%)
    assert 0.12 < res.accuracy < 0.35 and len(res.per_run) == 20
    index = {}
    for run in runs:
        for i, img in enumerate(run.training):
            index[img.tobytes()] = i
        for item, ans in zip(run.test, run.answers, strict=True):
            index[item.tobytes()] = ans
    oracle = EmbeddingScorer(lambda ink: np.eye(20, dtype=np.float32)[[index[i.tobytes()] for i in ink]])
    assert official_runs_accuracy(oracle, runs).accuracy == 1.0


TINY = dict(
    data_root=str(DATA),
    train_alphabets=4,
    val_alphabets=5,
    channels=(32, 32, 32, 32),
    val_episodes=100,
    threads=2,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    if not HAVE_DATA:
        pytest.skip(f"Omniglot not found in {DATA}")
    out = tmp_path_factory.mktemp("proto")
    cfg = OmniglotTrainConfig(
        method="proto", n_way=20, k_shot=1, n_query=4, epochs=2, steps_per_epoch=30, lr=2e-3, rotations=False, **TINY
    )
    return cfg, train_omniglot(cfg, out, progress=False)


@pytest.mark.data
@pytest.mark.slow
@needs_data
def test_short_training_beats_chance_and_untrained(trained, evaluation) -> None:
    _, result = trained
    assert result.best_checkpoint.is_file() and result.last_checkpoint.is_file()
    assert len(result.history) == 2 and result.steps == 60
    loaded = load_checkpoint(result.best_checkpoint)
    assert loaded.config["method"] == "proto" and loaded.metrics["val_20way_1shot"] == result.best_val_accuracy
    sub = evaluation.subset(evaluation.alphabet_names[:6])
    trained_scorer = NetScorer(loaded.net, loaded.spec)
    emb = embed_split(trained_scorer, sub.images)
    after = pair_evaluation(emb, trained_scorer, n_pairs=4000, seed=3)
    torch.manual_seed(0)
    fresh = NetScorer(build_embedding(loaded.spec).eval(), loaded.spec)
    before = pair_evaluation(embed_split(fresh, sub.images), fresh, n_pairs=4000, seed=3)
    # chance is 50%; a minute of training on 4 alphabets gets well above it, and above
    # the (already informative) random convolutional features
    assert after.accuracy > 0.75, (before.accuracy, after.accuracy)
    assert after.accuracy > before.accuracy + 0.05, (before.accuracy, after.accuracy)
    assert n_way_accuracy(emb, trained_scorer, 5, 1, 1000).accuracy > 0.7
    assert result.history[-1]["val_20way_1shot"] > 0.3  # chance: 0.05


@pytest.mark.data
@pytest.mark.slow
@needs_data
def test_resume_is_deterministic(tmp_path: Path) -> None:
    cfg = OmniglotTrainConfig(
        method="triplet", batch_size=32, epochs=2, steps_per_epoch=3, affine=True, **{**TINY, "val_episodes": 0}
    )
    whole = train_omniglot(cfg, tmp_path / "whole", progress=False)
    first = train_omniglot(cfg, tmp_path / "split", progress=False, stop_after=1)  # "interrupted"
    assert first.steps == 3
    resumed = train_omniglot(cfg, tmp_path / "split", resume=True, progress=False)
    assert resumed.steps == whole.steps == 6
    a = load_checkpoint(whole.last_checkpoint).net.state_dict()
    b = load_checkpoint(resumed.last_checkpoint).net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.data
@pytest.mark.slow
@needs_data
def test_wall_time_budget_includes_validation(tmp_path: Path) -> None:
    cfg = OmniglotTrainConfig(method="proto-loo", batch_size=32, steps_per_epoch=5, time_budget=4.0, fit=0.7, **TINY)
    result = train_omniglot(cfg, tmp_path, progress=False)
    walls = [r["wall_seconds"] for r in result.history]
    # it stops at the first epoch whose record shows the budget spent: every epoch but the
    # last ended inside the 4 s (loading and validation counted), the last one past it. The
    # decision is made on the logged (one-decimal) figure, so a 3.96 s epoch logged as 4.0
    # ends the run rather than contradicting the log.
    assert [w >= 4.0 for w in walls] == [False] * (len(walls) - 1) + [True], walls
    last = result.history[-1]
    previous_step = result.history[-2]["step"] if len(walls) > 1 else 0
    assert 1 <= last["step"] - previous_step <= cfg.steps_per_epoch  # the last epoch may break off early
    assert last["train_seconds"] < last["wall_seconds"]
    loaded = load_checkpoint(result.best_checkpoint)
    assert loaded.spec.fit == 0.7
    assert "val_20way_1shot_tta" in loaded.metrics


@torch.no_grad()
def _first_loss_by_hand(cfg: OmniglotTrainConfig) -> float:
    """The loss of a run's first step, from facegate.learn.losses on the batch the run draws first."""
    from facegate.learn.losses import (
        CosFaceLoss,
        SiameseBCELoss,
        contrastive_loss,
        leave_one_out_prototypical_loss,
    )
    from facegate.learn.training.omniglot import _load_data
    from facegate.learn.training.samplers import PairSampler, TripletSampler

    data = _load_data(cfg)
    n_classes, n_examples = data.x.shape[:2]
    torch.manual_seed(cfg.seed)
    net = build_embedding(cfg.net_spec())
    rng = np.random.default_rng(cfg.seed)

    def embed(classes: np.ndarray, examples: np.ndarray) -> torch.Tensor:
        return net(data.x[torch.from_numpy(classes), torch.from_numpy(examples)][:, None])

    if cfg.method == "cosface":
        head = CosFaceLoss(net.dim, n_classes, scale=30.0, margin=0.1)
        classes = rng.integers(0, n_classes, cfg.batch_size)
        examples = rng.integers(0, n_examples, cfg.batch_size)
        return float(head(embed(classes, examples), torch.from_numpy(classes)))
    if cfg.method == "proto-loo":
        sampler = TripletSampler(n_classes, n_examples, data.groups, cfg.within_alphabet)
        classes, examples = sampler.sample_pk(cfg.batch_size // 2, 2, rng)
        return float(leave_one_out_prototypical_loss(embed(classes, examples), 2))
    siamese = SiameseBCELoss(net.dim) if cfg.method == "siamese-bce" else None
    b = PairSampler(n_classes, n_examples, data.groups, cfg.within_alphabet).sample(cfg.batch_size, rng)
    z = embed(np.r_[b.class1, b.class2], np.r_[b.example1, b.example2])
    n, same = len(b.same), torch.from_numpy(b.same).float()
    if siamese is not None:
        return float(siamese(z[:n], z[n:], same))
    return float(contrastive_loss(z[:n], z[n:], same, margin=0.5))


@pytest.mark.data
@pytest.mark.slow
@needs_data
@pytest.mark.parametrize(
    ("method", "metric", "normalize"),
    [
        ("siamese-bce", "siamese-head", False),
        ("contrastive", "euclidean", True),
        ("cosface", "cosine", True),
        ("proto-loo", "euclidean", False),
    ],
)
def test_each_method_trains_on_its_own_loss(method: str, metric: str, normalize: bool, tmp_path: Path) -> None:
    cfg = OmniglotTrainConfig(
        method=method, batch_size=32, epochs=1, steps_per_epoch=1, affine=False, **{**TINY, "val_episodes": 0}
    )
    result = train_omniglot(cfg, tmp_path, progress=False)
    loaded = load_checkpoint(result.best_checkpoint)
    assert (loaded.spec.metric, loaded.spec.normalize) == (metric, normalize)
    assert (loaded.head is not None) == (method == "siamese-bce")
    # the logged loss of the one step is the method's loss (its margin, scale and sampler) on the first batch
    assert result.history[0]["loss"] == pytest.approx(_first_loss_by_hand(cfg), rel=1e-4)


@pytest.mark.data
@pytest.mark.slow
@needs_data
def test_cli_train_and_evaluate(trained, tmp_path: Path) -> None:
    from facegate.cli.oneshot import oneshot_command
    from facegate.cli.train import train

    runner = CliRunner()
    out = tmp_path / "train"
    res = runner.invoke(
        train,
        ["omniglot", "--method", "proto", "--out", str(out), "--data", str(DATA), "--epochs", "1",
         "--steps-per-epoch", "2", "--n-way", "10", "--train-alphabets", "2", "--channels", "16,16,16,16",
         "--val-episodes", "50", "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["steps"] == 2
    assert (out / "best.pt").is_file() and (out / "config.json").is_file()

    _, result = trained
    report_dir = tmp_path / "report"
    res = runner.invoke(
        oneshot_command,
        [str(result.best_checkpoint), "--out", str(report_dir), "--data", str(DATA), "--episodes", "200",
         "--pairs", "2000"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "20 official runs" in res.output
    report = json.loads((report_dir / "report.json").read_text())
    assert report["pairs"]["n_pairs"] == 2000 and 0.5 < report["pairs"]["accuracy"] <= 1
    assert {(e["n_way"], e["k_shot"]) for e in report["episodes"]} >= {(5, 1), (20, 1), (20, 5), (16, 1)}
    assert len(report["official_runs"]["per_run"]) == 20
    assert report["drawers"]["queries"] == 6590
    for name in ("report.md", "roc.png", "pairs.png", "episode.png"):
        assert (report_dir / name).stat().st_size > 0


def test_model_module_does_not_import_torch() -> None:
    code = "import sys, facegate.learn.models.omniglot; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_needs_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from facegate.errors import ModelUnavailableError
    from facegate.learn.models.omniglot import OmniglotModel

    monkeypatch.delenv("FACEGATE_OMNIGLOT_WEIGHTS", raising=False)
    with pytest.raises(ModelUnavailableError, match="FACEGATE_OMNIGLOT_WEIGHTS"):
        OmniglotModel()
    with pytest.raises(ModelUnavailableError, match="not found"):
        OmniglotModel(weights=tmp_path / "missing.pt")


@pytest.mark.data
@pytest.mark.slow
@needs_data
def test_model_through_facegate_api(trained, evaluation, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import zipfile

    import facegate
    from facegate.detection.base import FacialArea
    from facegate.images import load_image
    from facegate.learn.models.omniglot import OmniglotModel
    from facegate.models import MODELS

    _, result = trained
    model = OmniglotModel(weights=result.best_checkpoint)
    assert "omniglot" in MODELS and model.dim == 32

    # chips of real PNGs (1-bit, through load_image) embed like the training pipeline
    with zipfile.ZipFile(DATA / "images_evaluation.zip") as zf:
        name = evaluation.characters[0]
        files = sorted(n for n in zf.namelist() if n.startswith(f"images_evaluation/{name}/") and n.endswith(".png"))
        images = [load_image(zf.read(f)) for f in files[:2]]
    whole = FacialArea(0, 0, 105, 105, 1.0, np.zeros((5, 2)))
    chips = [model.chip(img, whole) for img in images]
    assert chips[0].shape == (105, 105) and chips[0].dtype == np.uint8
    emb = model.embed(chips)
    assert emb.shape == (2, 32) and emb.dtype == np.float32
    loaded = load_checkpoint(result.best_checkpoint)
    reference = NetScorer(loaded.net, loaded.spec).embed(evaluation.images[0, [int(f[-6:-4]) - 1 for f in files[:2]]])
    assert np.allclose(emb, reference, atol=1e-4)

    # the public API, with detector "skip": a same-character pair is closer than a different one
    paths = []
    for c, d in ((0, 0), (0, 1), (40, 0)):
        p = tmp_path / f"c{c}_{d}.png"
        from PIL import Image

        Image.fromarray(~evaluation.images[c, d]).save(p)
        paths.append(p)
    monkeypatch.setenv("FACEGATE_THRESHOLDS", str(tmp_path / "none.json"))
    # the model as an instance (its weights given in code, no environment variable)
    same = facegate.verify(paths[0], paths[1], model_name=model, detector_backend="skip")
    diff = facegate.verify(paths[0], paths[2], model_name=model, detector_backend="skip")
    assert same.model == "omniglot" and same.distance < diff.distance
    # no threshold given, none in a table: the one training measured with shift TTA
    assert same.threshold == pytest.approx(loaded.metrics["val_eer_threshold_tta"])
    between = (same.distance + diff.distance) / 2
    same = facegate.verify(paths[0], paths[1], model_name=model, detector_backend="skip", threshold=between)
    diff = facegate.verify(paths[0], paths[2], model_name=model, detector_backend="skip", threshold=between)
    assert (same.verified, diff.verified) == (True, False)


@pytest.mark.data
@pytest.mark.slow
@needs_data
def test_gallery_of_characters(trained, evaluation, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Enroll one drawing per character, identify other drawers' drawings of them."""
    from PIL import Image

    from facegate.detection.base import FacialArea
    from facegate.gallery import Gallery
    from facegate.models import MODELS

    _, result = trained
    best = load_checkpoint(result.best_checkpoint)
    assert best.metrics["val_eer_threshold_tta"] > 0  # training stored the TTA threshold
    monkeypatch.setenv("FACEGATE_OMNIGLOT_WEIGHTS", str(result.best_checkpoint))
    monkeypatch.setenv("FACEGATE_THRESHOLDS", str(tmp_path / "none.json"))
    MODELS.clear_shared()

    def png(c: int, d: int) -> Path:
        path = tmp_path / f"c{c}_d{d}.png"
        Image.fromarray(~evaluation.images[c, d]).save(path)
        return path

    characters = list(range(0, 200, 20))  # 10 characters from several alphabets
    with Gallery(tmp_path / "chars.sqlite", model_name="omniglot", detector_backend="skip") as gallery:
        # no threshold given, none in a table: the one training measured on its validation alphabets
        point = gallery.identification_point
        assert point.threshold == pytest.approx(best.metrics["val_eer_threshold_tta"])
        assert point.target is None and point.rate_at(0.5) is None  # no curve: no error rate is claimed
        for c in characters:
            gallery.enroll(f"char{c}", [png(c, 0)])
        assert len(gallery) == 10
        right = sum(gallery.identify(png(c, d)).candidates[0].name == f"char{c}" for c in characters for d in (5, 9))
        assert right >= 10  # chance is 2 of 20

    # TTA for characters shifts, never mirrors
    model = MODELS.shared("omniglot")
    whole = FacialArea(0, 0, 105, 105, 1.0, np.zeros((5, 2)))
    chip = model.chip(np.asarray(Image.open(png(0, 0)).convert("RGB")), whole)
    shifted = NetScorer(best.net, best.spec, tta=True).embed(evaluation.images[0, :1])
    np.testing.assert_allclose(model.embed_tta([chip]), shifted, atol=1e-4)
    assert not np.allclose(model.embed_tta([chip]), model.embed([chip[:, ::-1].copy()]), atol=1e-3)
    MODELS.clear_shared()
