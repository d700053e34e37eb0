"""Fine-tuning nn4.small2 on a folder-per-person face set with FaceNet's triplet loss.

The recipe is FaceNet's (Schroff et al. 2015): batches of ``P`` people x ``K`` photos,
every anchor-positive pair of the batch, a *semi-hard* negative for each
(``d(a,p) < d(a,n) < d(a,p) + α``, :func:`facegate.learn.miners.semi_hard_triplets`) and the
triplet loss ``max(‖a−p‖² − ‖a−n‖² + α, 0)`` (:func:`facegate.learn.losses.triplet_loss`,
α = 0.2, averaged over the batch's triplets; a batch with no semi-hard negative left
learns from its hard ones instead of idling). Photos are aligned once (OpenFace,
:mod:`facegate.alignment_openface`) and augmented on the fly with face-preserving changes:
horizontal flip, small rotation, scale and shift, brightness and contrast.

Some people are held out (never trained on); verification accuracy on pairs of their
photos, before and after training, says whether the embedding generalises.

With pretrained weights the stem and the first inception blocks stay frozen (generic
features, and a frozen trunk makes a CPU step about twice as cheap) and training starts at
``train_from``: ``inception_3c`` by default, the first block with a layer the exercise's
CSV folder lacks. Without weights every layer trains.
Batch-norm statistics of the trained layers are first re-estimated on training photos,
so the "before" figures are those of a fair starting point, not of stale statistics.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from facegate.alignment_openface import align_openface, landmarks_68
from facegate.datasets.folders import load_folder
from facegate.detection.base import FacialArea
from facegate.distances import get_metric
from facegate.evaluate import metrics
from facegate.evaluate.protocol import assign_folds, kfold_accuracy
from facegate.learn.losses import triplet_loss
from facegate.learn.miners import batch_all_triplets, semi_hard_triplets
from facegate.learn.nets.nn4small2 import STAGES, NN4Small2, to_input
from facegate.learn.nets.nn4small2_weights import LoadReport, export_csv, load_weights
from facegate.learn.training.config import FinetuneConfig

__all__ = [
    "FaceChips",
    "FinetuneConfig",
    "FinetuneResult",
    "Verification",
    "augment_chip",
    "evaluate_verification",
    "finetune_faces",
    "load_face_folder",
    "save_finetuned",
]

Crop = Literal["align", "whole"]


# --------------------------------------------------------------------------- data


@dataclass
class FaceChips:
    """Aligned face chips and who they are: ``chips[i]`` is a photo of ``people[labels[i]]``
    (the photos of a :class:`facegate.datasets.folders.FaceSet`, aligned for training)."""

    chips: np.ndarray  # (n, size, size, 3) uint8 RGB
    labels: np.ndarray  # (n,) int64
    people: list[str]
    paths: list[str] = field(default_factory=list)
    #: how many photos had a detected face (the others were used whole)
    detected: int = 0

    def of_people(self, people: Sequence[int]) -> FaceChips:
        """The photos of these people (indices into ``people``), relabelled 0..len-1."""
        keep = np.isin(self.labels, np.asarray(people))
        remap = {int(p): i for i, p in enumerate(people)}
        return FaceChips(
            chips=self.chips[keep],
            labels=np.array([remap[int(label)] for label in self.labels[keep]], dtype=np.int64),
            people=[self.people[int(p)] for p in people],
            paths=[p for p, k in zip(self.paths, keep, strict=True) if k] if self.paths else [],
        )


def _face_chip(image: np.ndarray, crop: Crop, size: int) -> tuple[np.ndarray, bool]:
    """An OpenFace chip (``align``: HOG face, else the whole image, 68 landmarks) or a resize."""
    import cv2

    if crop == "whole":
        h, w = image.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        return cv2.resize(image[top : top + side, left : left + side], (size, size), cv2.INTER_AREA), False
    from facegate.detection import get_detector

    faces = get_detector("hog").detect(image, 0) or get_detector("hog").detect(image, 1)
    h, w = image.shape[:2]
    face = max(faces, key=lambda f: f.area) if faces else FacialArea(0, 0, w, h, 0.0, np.zeros((5, 2)))
    chip, _ = align_openface(image, landmarks_68(image, face), size)
    return chip, bool(faces)


def load_face_folder(
    root: str | os.PathLike[str],
    crop: Crop = "align",
    size: int = 96,
    min_images: int = 2,
    max_images: int | None = None,
) -> FaceChips:
    """Read ``root/<person>/<photo>`` into aligned chips (people sorted by folder name).

    ``crop="align"`` finds the face with dlib's HOG detector (the whole image when it
    finds none, as for pre-cropped sets such as ORL) and aligns it the OpenFace way;
    ``crop="whole"`` resizes the centred square of each photo. People with fewer than
    ``min_images`` photos are skipped (they give no positive pair).
    """
    from facegate.images import load_image

    try:
        found = load_folder(root, "person-folders")  # FileNotFoundError when there is no such folder
    except ValueError:  # no sub-folder holds a photo
        raise ValueError(f"{root} needs at least 2 people with {min_images}+ photos each; found 0") from None
    chips, labels, people, paths, detected = [], [], [], [], 0
    for person in found.people:
        files = [f for f, label in zip(found.files(), found.labels, strict=True) if label == person]
        files = files[:max_images] if max_images else files
        if len(files) < min_images:
            continue
        for f in files:
            chip, face_found = _face_chip(load_image(f), crop, size)
            chips.append(chip)
            labels.append(len(people))
            paths.append(f)
            detected += face_found
        people.append(person)
    if len(people) < 2:
        raise ValueError(f"{found.root} needs at least 2 people with {min_images}+ photos each; found {len(people)}")
    return FaceChips(np.stack(chips), np.array(labels, dtype=np.int64), people, paths, detected)


def augment_chip(
    chip: np.ndarray,
    rng: np.random.Generator,
    flip: float = 0.5,
    max_rotation: float = 8.0,
    scale: tuple[float, float] = (0.92, 1.08),
    max_shift: float = 0.04,
    brightness: float = 0.12,
    contrast: tuple[float, float] = (0.8, 1.2),
) -> np.ndarray:
    """A randomly changed copy of an aligned chip that is still the same, upright face.

    Horizontal flip (the OpenFace template is nearly symmetric), rotation within
    ``±max_rotation`` degrees, scale, a shift of up to ``max_shift`` of the side (one
    affine warp, borders reflected), then ``contrast * (x - mean) + mean + brightness*255``.
    """
    import cv2

    size = chip.shape[0]
    image = chip[:, ::-1] if rng.random() < flip else chip
    angle = rng.uniform(-max_rotation, max_rotation)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, rng.uniform(*scale))
    matrix[:, 2] += rng.uniform(-max_shift, max_shift, 2) * size
    warped = cv2.warpAffine(np.ascontiguousarray(image), matrix, (size, size), borderMode=cv2.BORDER_REFLECT_101)
    pixels = warped.astype(np.float32)
    mean = pixels.mean()
    pixels = (pixels - mean) * rng.uniform(*contrast) + mean + rng.uniform(-brightness, brightness) * 255
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _pk_batch(labels: np.ndarray, p: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``p`` random people x ``k`` of their photos (with repeats if they have fewer)."""
    people = np.unique(labels)
    chosen = rng.choice(people, size=min(p, people.size), replace=False)
    picks = []
    for person in chosen:
        own = np.flatnonzero(labels == person)
        picks.append(rng.choice(own, size=k, replace=own.size < k))
    return np.concatenate(picks)


# --------------------------------------------------------------------------- evaluation


@dataclass
class Verification:
    """Verification on pairs of photos: same person or not, by embedding distance.

    ``accuracy``: mean over 10 folds of the accuracy at the threshold that is best on
    the other 9 (LFW's protocol, :func:`facegate.evaluate.protocol.kfold_accuracy`), on a
    balanced set of pairs. ``auc``: area under the ROC
    curve. ``loss``: mean triplet loss over every valid triplet of these photos.
    """

    accuracy: float
    auc: float
    threshold: float
    loss: float
    pairs: int


def _balanced_pairs(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i, j = np.triu_indices(labels.size, k=1)
    same = labels[i] == labels[j]
    pos = np.flatnonzero(same)
    neg = np.flatnonzero(~same)
    n = min(pos.size, neg.size)
    keep = np.concatenate([rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)])
    return i[keep], j[keep], same[keep]


def evaluate_verification(embeddings: np.ndarray, labels: np.ndarray, seed: int = 0, folds: int = 10) -> Verification:
    """Verification accuracy, AUC and triplet loss of these embeddings (see :class:`Verification`)."""
    rng = np.random.default_rng(seed)
    i, j, same = _balanced_pairs(labels, rng)
    if i.size == 0:
        raise ValueError("verification needs 2+ people, one of them with 2+ photos")
    distances = get_metric("euclidean")(embeddings[i], embeddings[j])
    kfold = kfold_accuracy(distances, same, assign_folds(same, folds, seed))
    emb = torch.from_numpy(np.asarray(embeddings, dtype=np.float32))
    lab = torch.from_numpy(np.asarray(labels))
    a, p, n = batch_all_triplets(emb, lab)
    loss = float(triplet_loss(emb[a], emb[p], emb[n], reduction="mean")) if a.numel() else 0.0
    return Verification(
        accuracy=kfold.mean,
        auc=metrics.auc(metrics.roc_curve(distances, same)),
        threshold=metrics.best_threshold(distances, same)[0],
        loss=loss,
        pairs=int(i.size),
    )


# --------------------------------------------------------------------------- training


@dataclass
class FinetuneResult:
    """Held-out verification before and after, the loss history and the trained model."""

    before: Verification
    after: Verification
    #: mean triplet loss of all triplets of a fixed batch of training photos
    train_loss_before: float
    train_loss_after: float
    #: mean semi-hard triplet loss of each training step
    losses: list[float]
    steps: int
    epochs: float
    train_seconds: float
    seconds: float
    train_people: list[str]
    test_people: list[str]
    weights: str | None
    missing_layers: list[str]
    trained_from: str
    model: NN4Small2 = field(repr=False)

    def summary(self) -> dict[str, object]:
        """Everything but the model, JSON-ready."""
        out = {k: v for k, v in asdict(self).items() if k != "model"}
        return json.loads(json.dumps(out, default=float))


class _Runner:
    """Runs the network as a frozen trunk (no gradients, eval-mode batch norms) + a trained head.

    Trunk outputs of un-augmented photos never change, so they are computed once.
    """

    def __init__(self, model: NN4Small2, train_from: str) -> None:
        self.model = model
        index = STAGES.index(train_from)
        self.start = train_from
        self.trunk_end = STAGES[index - 1] if index > 0 else None
        self.trainable = [n for s in STAGES[index:] for n in model.stage_layers(s)]
        self.frozen = [n for s in STAGES[:index] for n in model.stage_layers(s)]
        for name in self.frozen:
            model.get_submodule(name).requires_grad_(False)

    def parameters(self) -> list[nn.Parameter]:
        return [p for n in self.trainable for p in self.model.get_submodule(n).parameters()]

    def set_train(self, training: bool) -> None:
        self.model.train(training)
        for name in self.frozen:  # frozen batch norms keep their statistics
            self.model.get_submodule(name).eval()

    @torch.no_grad()
    def trunk(self, chips: np.ndarray | list[np.ndarray], batch: int = 50) -> Tensor:
        if self.trunk_end is None:
            return to_input(chips)
        self.set_train(False)
        return torch.cat(
            [self.model.run(to_input(chips[s : s + batch]), stop=self.trunk_end) for s in range(0, len(chips), batch)]
        )

    def head(self, h: Tensor) -> Tensor:
        return self.model.run(h, start=self.start)

    @torch.no_grad()
    def embed(self, h: Tensor, batch: int = 50) -> np.ndarray:
        """Embeddings from trunk outputs ``h`` (eval mode)."""
        self.set_train(False)
        return torch.cat([self.head(h[s : s + batch]) for s in range(0, len(h), batch)]).numpy()


@torch.no_grad()
def _recalibrate_bn(runner: _Runner, h: Tensor, batch: int = 32) -> None:
    """Re-estimate the running statistics of the trained batch norms from trunk outputs ``h``."""
    norms = [m for n in runner.trainable if isinstance(m := runner.model.get_submodule(n), nn.BatchNorm2d)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    runner.set_train(True)
    for s in range(0, len(h), batch):
        runner.head(h[s : s + batch])
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    runner.set_train(False)


def _probe_loss(runner: _Runner, h: Tensor, labels: np.ndarray) -> float:
    emb = torch.from_numpy(runner.embed(h))
    lab = torch.from_numpy(labels)
    a, p, n = batch_all_triplets(emb, lab)
    return float(triplet_loss(emb[a], emb[p], emb[n], reduction="mean")) if a.numel() else 0.0


def finetune_faces(
    data: str | os.PathLike[str] | FaceChips,
    weights: str | os.PathLike[str] | None = None,
    config: FinetuneConfig | None = None,
    strict: bool = False,
    log: Callable[[str], None] | None = None,
) -> FinetuneResult:
    """Fine-tune nn4.small2 with triplet loss and semi-hard mining; see the module doc.

    ``data``: a folder of one sub-folder of photos per person, or a loaded
    :class:`FaceChips`. ``weights``: starting weights (CSV folder, ``.h5``, ``.pt``);
    ``strict=False`` accepts an incomplete set, the missing layers starting random.
    Without weights every layer starts random and trains. Returns the held-out
    verification before and after, and the model.
    """
    cfg = config or FinetuneConfig()
    if cfg.threads is None:
        return _finetune(data, weights, cfg, strict, log or (lambda _message: None))
    saved = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _finetune(data, weights, cfg, strict, log or (lambda _message: None))
    finally:
        torch.set_num_threads(saved)


def _finetune(
    data: str | os.PathLike[str] | FaceChips,
    weights: str | os.PathLike[str] | None,
    cfg: FinetuneConfig,
    strict: bool,
    say: Callable[[str], None],
) -> FinetuneResult:
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    faces = data if isinstance(data, FaceChips) else load_face_folder(data, crop=cfg.crop)
    n_people = len(faces.people)
    if not 2 <= cfg.holdout_people <= n_people - 2:
        raise ValueError(
            f"holdout_people must be 2 or more (verification needs pairs of different people) "
            f"and leave 2+ of the {n_people} people to train on; got {cfg.holdout_people}"
        )
    order = rng.permutation(n_people)
    test_ids, train_ids = sorted(order[: cfg.holdout_people]), sorted(order[cfg.holdout_people :])
    train, test = faces.of_people(train_ids), faces.of_people(test_ids)
    say(f"training on {len(train.chips)} photos of {len(train.people)} people; {len(test.people)} people held out")

    model = NN4Small2()
    report: LoadReport | None = None
    if weights is not None:
        report = load_weights(model, weights, strict=strict)
        say(f"loaded {len(report.loaded)} tensors from {weights}; missing: {report.missing_layers() or 'none'}")
    train_from = cfg.train_from if weights is not None else "stem"
    runner = _Runner(model, train_from)
    probe = _pk_batch(train.labels, cfg.people_per_batch, cfg.images_per_person, np.random.default_rng(cfg.seed + 1))
    probe_h, test_h = runner.trunk(train.chips[probe]), runner.trunk(test.chips)
    if cfg.recalibrate_bn:
        _recalibrate_bn(runner, probe_h)
    train_loss_before = _probe_loss(runner, probe_h, train.labels[probe])
    before = evaluate_verification(runner.embed(test_h), test.labels, cfg.seed)
    say(f"before: held-out accuracy {before.accuracy:.3f}, AUC {before.auc:.3f}, loss {before.loss:.4f}")

    optimiser = torch.optim.Adam(runner.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batch = cfg.people_per_batch * cfg.images_per_person
    steps_per_epoch = max(1, math.ceil(len(train.chips) / batch))
    total_steps = cfg.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, total_steps))
    losses: list[float] = []
    train_start = time.perf_counter()
    for step in range(total_steps):
        if cfg.time_budget is not None and time.perf_counter() - train_start >= cfg.time_budget:
            say(f"time budget of {cfg.time_budget:g} s reached after {step} steps")
            break
        idx = _pk_batch(train.labels, cfg.people_per_batch, cfg.images_per_person, rng)
        chips = [augment_chip(c, rng) for c in train.chips[idx]] if cfg.augment else train.chips[idx]
        h = runner.trunk(chips)
        runner.set_train(True)
        emb = runner.head(h)
        labels = torch.from_numpy(train.labels[idx])
        a, p, n = semi_hard_triplets(emb, labels, cfg.margin)
        if a.numel() == 0:  # nothing semi-hard left in this batch: learn from the hard ones
            a, p, n = batch_all_triplets(emb, labels, cfg.margin, only_active=True)
        if a.numel() == 0:
            losses.append(0.0)
            scheduler.step()
            continue
        loss = triplet_loss(emb[a], emb[p], emb[n], cfg.margin, reduction="mean")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        scheduler.step()
        losses.append(loss.detach().item())
        if (step + 1) % steps_per_epoch == 0:
            recent = losses[-steps_per_epoch:]
            say(f"epoch {(step + 1) // steps_per_epoch}: mean semi-hard loss {sum(recent) / len(recent):.4f}")
    train_seconds = time.perf_counter() - train_start
    after = evaluate_verification(runner.embed(test_h), test.labels, cfg.seed)
    train_loss_after = _probe_loss(runner, probe_h, train.labels[probe])
    say(f"after: held-out accuracy {after.accuracy:.3f}, AUC {after.auc:.3f}, loss {after.loss:.4f}")
    model.requires_grad_(True)
    model.eval()
    return FinetuneResult(
        before=before,
        after=after,
        train_loss_before=train_loss_before,
        train_loss_after=train_loss_after,
        losses=losses,
        steps=len(losses),
        epochs=len(losses) / steps_per_epoch,
        train_seconds=train_seconds,
        seconds=time.perf_counter() - started,
        train_people=train.people,
        test_people=test.people,
        weights=str(weights) if weights is not None else None,
        missing_layers=report.missing_layers() if report else [],
        trained_from=train_from,
        model=model,
    )


def save_finetuned(result: FinetuneResult, out: str | os.PathLike[str]) -> Path:
    """Write the model as the exercise's CSV folder (loadable as ``weights=``) + ``training.json``."""
    folder = Path(out)
    export_csv(result.model, folder)
    (folder / "training.json").write_text(json.dumps(result.summary(), indent=2) + "\n", encoding="utf-8")
    return folder
