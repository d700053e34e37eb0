"""Fine-tuning nn4.small2 on folder-per-person faces: data, augmentation, metrics, training."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facegate.learn.training.faces import (  # noqa: E402
    FaceChips,
    FinetuneConfig,
    _pk_batch,
    augment_chip,
    evaluate_verification,
    finetune_faces,
    load_face_folder,
)
from tests.conftest import data_dir  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _face_like(rng: np.random.Generator, person: int, size: int = 96) -> np.ndarray:
    """A synthetic "photo" of ``person``: a person-specific smooth pattern plus noise."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin((person + 1) * 3 * xx + c) * np.cos((person % 3 + 1) * 2 * yy) for c in range(3)], -1)
    image = 127 + 90 * base + rng.normal(0, 12, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _synthetic(people: int = 5, photos: int = 4, seed: int = 0) -> FaceChips:
    rng = np.random.default_rng(seed)
    chips = np.stack([_face_like(rng, p) for p in range(people) for _ in range(photos)])
    labels = np.repeat(np.arange(people), photos)
    return FaceChips(chips, labels, [f"p{p}" for p in range(people)])


def test_augmentation_keeps_the_face():
    rng = np.random.default_rng(0)
    chip = _face_like(rng, 2)
    same = dict(max_rotation=0, scale=(1, 1), max_shift=0, brightness=0, contrast=(1, 1))
    assert np.array_equal(augment_chip(chip, rng, flip=0.0, **same), chip)
    assert np.array_equal(augment_chip(chip, rng, flip=1.0, **same), chip[:, ::-1])
    changed = [augment_chip(chip, np.random.default_rng(s)) for s in range(5)]
    for out in changed:
        assert out.shape == chip.shape and out.dtype == np.uint8
        assert not np.array_equal(out, chip)
        unflipped = max(np.corrcoef(out.ravel(), c.ravel())[0, 1] for c in (chip, chip[:, ::-1]))
        assert unflipped > 0.6  # still the same picture, slightly moved and relit


def test_pk_batches_hold_k_photos_of_p_people():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    idx = _pk_batch(labels, 3, 2, np.random.default_rng(0))
    people, counts = np.unique(labels[idx], return_counts=True)
    assert len(people) == 3 and (counts == 2).all()
    idx = _pk_batch(labels, 4, 3, np.random.default_rng(1))  # person 3 has one photo: repeated
    assert sorted(np.unique(labels[idx]).tolist()) == [0, 1, 2, 3] and idx.size == 12


def test_verification_metrics():
    labels = np.repeat(np.arange(6), 5)
    centres = np.eye(128, dtype=np.float32)[:6]
    perfect = centres[labels] + np.random.default_rng(0).normal(0, 0.01, (30, 128)).astype(np.float32)
    result = evaluate_verification(perfect, labels)
    assert result.accuracy == 1.0 and result.auc == 1.0 and result.loss == 0.0
    assert result.pairs == 2 * 60  # 6 people x C(5, 2) same pairs, as many different pairs
    noise = np.random.default_rng(1).normal(size=(30, 128)).astype(np.float32)
    chance = evaluate_verification(noise / np.linalg.norm(noise, axis=1, keepdims=True), labels)
    assert 0.25 < chance.accuracy < 0.75 and 0.3 < chance.auc < 0.7 and chance.loss > 0.1


def test_load_face_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for person, count in (("ann", 3), ("bob", 2), ("cy", 1)):
        (tmp_path / person).mkdir()
        for i in range(count):
            Image.fromarray(_face_like(rng, len(person), 80)[:, :60, 0]).save(tmp_path / person / f"{i}.pgm")
    (tmp_path / "ann" / "notes.txt").write_text("not a photo")
    faces = load_face_folder(tmp_path, crop="whole")
    assert faces.people == ["ann", "bob"]  # cy has a single photo: no positive pair
    assert faces.chips.shape == (5, 96, 96, 3) and faces.chips.dtype == np.uint8
    assert faces.labels.tolist() == [0, 0, 0, 1, 1] and faces.detected == 0
    bob = faces.of_people([1])
    assert bob.people == ["bob"] and bob.labels.tolist() == [0, 0] and len(bob.paths) == 2
    with pytest.raises(ValueError, match="at least 2 people"):
        load_face_folder(tmp_path / "ann")


@pytest.mark.slow
def test_finetune_from_random_weights_runs_end_to_end():
    config = FinetuneConfig(epochs=1, holdout_people=2, people_per_batch=3, images_per_person=2, seed=3)
    result = finetune_faces(_synthetic(5, 4), None, config)
    assert result.trained_from == "stem" and result.weights is None
    assert result.steps == 2 and all(np.isfinite(result.losses))
    assert len(result.train_people) == 3 and len(result.test_people) == 2
    assert not set(result.train_people) & set(result.test_people)
    # "after" is the held-out verification of the model it returns: 2 people x 4 photos give
    # 2 x C(4, 2) = 12 same pairs and as many of the 16 different ones
    from facegate.learn.nets.nn4small2 import to_input

    faces = _synthetic(5, 4)
    test = faces.of_people([faces.people.index(p) for p in result.test_people])
    with torch.no_grad():
        embeddings = result.model.eval()(to_input(test.chips)).numpy()
    expected = evaluate_verification(embeddings, test.labels, config.seed)
    assert result.after.pairs == expected.pairs == 24
    assert result.after.accuracy == pytest.approx(expected.accuracy, abs=1e-6)
    assert result.after.auc == pytest.approx(expected.auc, abs=1e-6)
    assert json.loads(json.dumps(result.summary()))["steps"] == 2
    with pytest.raises(ValueError, match="holdout_people"):
        finetune_faces(_synthetic(3, 2), None, FinetuneConfig(holdout_people=2))


def test_time_budget_stops_training():
    config = FinetuneConfig(epochs=50, time_budget=0.0, holdout_people=2, people_per_batch=3, images_per_person=2)
    result = finetune_faces(_synthetic(5, 4), None, config)
    assert result.steps == 0 and result.before.accuracy == result.after.accuracy


@pytest.mark.slow
def test_cli_trains_and_writes_loadable_weights(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from facegate.cli.train_faces import faces_command
    from facegate.learn.nets.nn4small2 import NN4Small2
    from facegate.learn.nets.nn4small2_weights import load_weights

    rng = np.random.default_rng(0)
    for person in range(5):
        (tmp_path / "faces" / f"s{person}").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(_face_like(rng, person)).save(tmp_path / "faces" / f"s{person}" / f"{i}.png")
    out = tmp_path / "trained"
    args = [str(tmp_path / "faces"), "--model", "openface-nn4small2", "--epochs", "1", "--out", str(out)]
    args += ["--seed", "1", "--holdout-people", "2", "--crop", "whole", "--threads", "1", "--json"]
    result = CliRunner().invoke(faces_command, args, env={"FACEGATE_NN4SMALL2_WEIGHTS": ""})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["out"] == str(out) and len(summary["test_people"]) == 2 and summary["steps"] == 1
    assert len(list(out.glob("*.csv"))) == 224
    assert json.loads((out / "training.json").read_text())["trained_from"] == "stem"
    assert load_weights(NN4Small2(), out).complete
    bad = CliRunner().invoke(faces_command, [str(tmp_path / "faces"), "--holdout-people", "4", "--crop", "whole"])
    assert bad.exit_code == 2 and "holdout_people" in bad.output


@pytest.mark.slow
@pytest.mark.data
def test_orl_finetuning_improves_held_out_verification():
    """Train on 30 ORL people for one epoch (10 steps of 8 people x 4 photos) from the
    exercise's incomplete weights (the 5 missing layers start random); the 10 other
    people's verification accuracy and the triplet loss must both improve."""
    orl = data_dir("orl")
    weights = data_dir("happyhouse", "weights")
    config = FinetuneConfig(epochs=1, holdout_people=10, seed=0, threads=1)
    result = finetune_faces(orl, weights, config)
    assert len(result.train_people) == 30 and len(result.test_people) == 10
    assert result.missing_layers == [
        "inception_3c_3x3_conv2",
        "inception_4e_3x3_conv2",
        "inception_5a_1x1_conv",
        "inception_5a_3x3_conv2",
        "inception_5b_3x3_conv2",
    ]
    assert result.steps == 10
    assert result.train_loss_after < 0.5 * result.train_loss_before
    assert result.after.loss < result.before.loss
    assert result.after.accuracy > result.before.accuracy + 0.02
    assert result.after.auc > result.before.auc


@pytest.mark.data
def test_cli_refuses_incomplete_weights_unless_allowed(tmp_path):
    from click.testing import CliRunner

    from facegate.cli.train_faces import faces_command

    weights = data_dir("happyhouse", "weights")
    refused = CliRunner().invoke(faces_command, [str(data_dir("orl")), "--weights", str(weights), "--epochs", "1"])
    assert refused.exit_code == 6
    for stem in ("inception_3c_3x3_conv2_w", "inception_5b_3x3_conv2_w"):
        assert stem in refused.output
    assert "--allow-missing" in CliRunner().invoke(faces_command, ["--help"]).output
