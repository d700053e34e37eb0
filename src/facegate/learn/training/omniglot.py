"""Train one-shot models on Omniglot's background set, on a CPU.

Methods (``OmniglotTrainConfig.method``), all on the same embedding network:

* ``siamese-bce`` – Koch et al.: pairs, L1 distance → dense → sigmoid, cross-entropy.
* ``triplet`` – FaceNet: P×K batches of L2-normalised embeddings, online semi-hard
  mining, triplet loss with α = 0.2.
* ``contrastive`` – Hadsell et al.: pairs of L2-normalised embeddings.
* ``proto`` – Snell et al.: N-way k-shot episodes, softmax over negative squared
  distances to the class means.
* ``proto-loo`` – the prototypical loss on P×K batches, every image a query against
  leave-one-out prototypes (K = 2 makes it P-way 1-shot with all images as queries).
* ``cosface`` – a normalised-softmax classifier with an additive cosine margin over all
  training classes (Wang et al. 2018); the embedding is the unit vector before the
  classifier. Every image is compared with every class at each step, which makes it
  the most sample-efficient on a CPU.

Training holds out whole background alphabets for validation (class-disjoint), runs a
20-way 1-shot validation after each epoch, writes ``last.pt`` (resumable) and
``best.pt`` (best validation accuracy) and a ``log.jsonl``; at the end it validates
``best.pt`` again with shift TTA and stores that EER threshold for the ``omniglot``
model. Seeds make a run reproducible; with a wall-time budget (everything counted:
loading, training, validation) the learning-rate schedule follows elapsed time, so
results then depend on the machine's speed.

The defaults are the recipe of the best run in ``bench/omniglot.py``: ``proto-loo``, ink
scaled to 80% of the frame and centred (``fit``), 60% of batches drawn within one
alphabet (hard negatives: Lake et al.'s runs are within-alphabet), rotated classes,
small random affine distortions.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from facegate.learn.losses import (
    ContrastiveLoss,
    CosFaceLoss,
    SiameseBCELoss,
    leave_one_out_prototypical_loss,
    prototypical_loss,
    triplet_loss,
)
from facegate.learn.miners import batch_hard_triplets, semi_hard_triplets
from facegate.learn.nets.omniglot import (
    NetSpec,
    build_embedding,
    count_parameters,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from facegate.learn.omniglot_data import OmniglotSplit, load_omniglot, prepare
from facegate.learn.oneshot import NetScorer, n_way_accuracy, pair_evaluation
from facegate.learn.training.augment import random_affine, rotate_classes
from facegate.learn.training.config import _UNLIMITED, METHODS, OmniglotTrainConfig
from facegate.learn.training.samplers import EpisodeSampler, PairSampler, TripletSampler, alphabet_split

__all__ = ["METHODS", "OmniglotTrainConfig", "TrainResult", "train_omniglot"]


@dataclass
class TrainResult:
    out_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_val_accuracy: float
    steps: int
    train_seconds: float
    parameters: int
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Data:
    """Training tensors: ``(C, D, S, S)`` float images and alphabet ids per class."""

    x: Tensor
    groups: np.ndarray
    val: OmniglotSplit


def _load_data(cfg: OmniglotTrainConfig) -> _Data:
    background = load_omniglot("background", cfg.data_root)
    train_names, val_names = alphabet_split(background.alphabets, cfg.val_alphabets, seed=0)
    if cfg.train_alphabets is not None:
        train_names = train_names[: cfg.train_alphabets]
    train = background.subset(train_names, "train")
    val = background.subset(val_names, "validation")
    x = torch.from_numpy(prepare(train.images, cfg.input_size, cfg.center, cfg.fit))
    groups: np.ndarray | None = train.alphabet_ids
    if cfg.rotations:
        x, groups = rotate_classes(x, groups)
    assert groups is not None
    return _Data(x=x.contiguous(), groups=groups, val=val)


class _Method:
    """One training objective: owns its sampler and any extra trainable module."""

    def __init__(self, cfg: OmniglotTrainConfig, data: _Data, net: nn.Module) -> None:
        self.cfg, self.net = cfg, net
        self.x = data.x
        self.n_classes, self.n_examples = data.x.shape[:2]
        self.groups = data.groups
        self.margin = cfg.effective_margin()
        self.extra: nn.Module | None = None

    def images(self, classes: np.ndarray, examples: np.ndarray, gen: torch.Generator) -> Tensor:
        batch = self.x[torch.from_numpy(classes), torch.from_numpy(examples)][:, None]
        if self.cfg.affine:
            batch = random_affine(batch, gen)
        return batch

    def loss(self, rng: np.random.Generator, gen: torch.Generator) -> Tensor:
        raise NotImplementedError


class _SiameseBCE(_Method):
    def __init__(self, cfg: OmniglotTrainConfig, data: _Data, net: nn.Module) -> None:
        super().__init__(cfg, data, net)
        self.sampler = PairSampler(self.n_classes, self.n_examples, self.groups, cfg.within_alphabet)
        self.extra = SiameseBCELoss(net.dim)

    def loss(self, rng: np.random.Generator, gen: torch.Generator) -> Tensor:
        b = self.sampler.sample(self.cfg.batch_size, rng)
        n = len(b.same)
        z = self.net(self.images(np.r_[b.class1, b.class2], np.r_[b.example1, b.example2], gen))
        assert self.extra is not None
        return self.extra(z[:n], z[n:], torch.from_numpy(b.same).float())


class _Contrastive(_SiameseBCE):
    def __init__(self, cfg: OmniglotTrainConfig, data: _Data, net: nn.Module) -> None:
        super().__init__(cfg, data, net)
        self.extra = ContrastiveLoss(self.margin)


class _Triplet(_Method):
    def __init__(self, cfg: OmniglotTrainConfig, data: _Data, net: nn.Module) -> None:
        super().__init__(cfg, data, net)
        self.sampler = TripletSampler(self.n_classes, self.n_examples, self.groups, cfg.within_alphabet)

    def loss(self, rng: np.random.Generator, gen: torch.Generator) -> Tensor:
        p = max(2, self.cfg.batch_size // self.cfg.per_class)
        classes, examples = self.sampler.sample_pk(p, self.cfg.per_class, rng)
        z = self.net(self.images(classes, examples, gen))
        labels = torch.from_numpy(classes)
        a, pos, neg = semi_hard_triplets(z, labels, self.margin)
        if a.numel() == 0:  # nothing semi-hard: fall back to the hardest in the batch
            a, pos, neg = batch_hard_triplets(z, labels)
        return triplet_loss(z[a], z[pos], z[neg], self.margin, reduction="mean")


class _Proto(_Method):
    def __init__(self, cfg: OmniglotTrainConfig, data: _Data, net: nn.Module) -> None:
        super().__init__(cfg, data, net)
        self.sampler = EpisodeSampler(
            self.n_classes,
            self.n_examples,
            cfg.n_way,
            cfg.k_shot,
            cfg.n_query,
            self.groups,
            cfg.within_alphabet,
        )

    def loss(self, rng: np.random.Generator, gen: torch.Generator) -> Tensor:
        ep = self.sampler.sample(rng)
        w, k, q = self.cfg.n_way, self.cfg.k_shot, self.cfg.n_query
        classes = np.repeat(ep.classes, k + q)
        examples = np.concatenate([ep.support, ep.query], axis=1).reshape(-1)
        z = self.net(self.images(classes, examples, gen)).view(w, k + q, -1)
        query = z[:, k:].reshape(w * q, -1)
        return prototypical_loss(query, z[:, :k].mean(1), torch.arange(w).repeat_interleave(q))


class _ProtoLOO(_Method):
    """Prototypical loss on a P×K batch where every image is a query: its own class's
    prototype leaves it out (K = 2: 1-shot), the other classes' use all K images."""

    def __init__(self, cfg: OmniglotTrainConfig, data: _Data, net: nn.Module) -> None:
        super().__init__(cfg, data, net)
        if cfg.per_class < 2:
            raise ValueError("proto-loo needs per_class >= 2")
        self.sampler = TripletSampler(self.n_classes, self.n_examples, self.groups, cfg.within_alphabet)

    def loss(self, rng: np.random.Generator, gen: torch.Generator) -> Tensor:
        k = self.cfg.per_class
        p = max(2, self.cfg.batch_size // k)
        classes, examples = self.sampler.sample_pk(p, k, rng)
        z = self.net(self.images(classes, examples, gen))  # (p*k, d), class-major
        return leave_one_out_prototypical_loss(z, k)


class _CosFace(_Method):
    def __init__(self, cfg: OmniglotTrainConfig, data: _Data, net: nn.Module) -> None:
        super().__init__(cfg, data, net)
        self.extra = CosFaceLoss(net.dim, self.n_classes, cfg.scale, self.margin)

    def loss(self, rng: np.random.Generator, gen: torch.Generator) -> Tensor:
        classes = rng.integers(0, self.n_classes, self.cfg.batch_size)
        examples = rng.integers(0, self.n_examples, self.cfg.batch_size)
        z = self.net(self.images(classes, examples, gen))
        assert self.extra is not None
        return self.extra(z, torch.from_numpy(classes))


_METHOD_CLASSES: dict[str, type[_Method]] = {
    "siamese-bce": _SiameseBCE,
    "triplet": _Triplet,
    "contrastive": _Contrastive,
    "proto": _Proto,
    "proto-loo": _ProtoLOO,
    "cosface": _CosFace,
}


def _lr_factor(progress: float) -> float:
    """Cosine decay from 1 to 0.01 over training, after a short linear warm-up."""
    progress = min(max(progress, 0.0), 1.0)
    warm = 0.02
    if progress < warm:
        return 0.1 + 0.9 * progress / warm
    p = (progress - warm) / (1 - warm)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * p))


def _validate(
    net: nn.Module, spec: NetSpec, head: nn.Module | None, val: OmniglotSplit, episodes: int, tta: bool = False
) -> dict:
    """20-way 1-shot accuracy (random and within-alphabet) and pair EER on held-out alphabets."""
    scorer = NetScorer(net, spec, head, tta=tta)
    x = prepare(val.images, spec.input_size, spec.center, spec.fit)
    emb = scorer.embed_prepared(x.reshape(-1, spec.input_size, spec.input_size))
    emb = emb.reshape(val.n_characters, val.n_drawers, -1)
    acc = n_way_accuracy(emb, scorer, 20, 1, episodes, seed=12345)
    within = n_way_accuracy(emb, scorer, 20, 1, episodes, seed=54321, group_ids=val.alphabet_ids)
    pairs = pair_evaluation(emb, scorer, n_pairs=4000, seed=777)
    return {
        "val_20way_1shot": acc.accuracy,
        "val_20way_1shot_within": within.accuracy,
        "val_pair_accuracy": pairs.accuracy,
        "val_eer": pairs.eer,
        #: a distance of the ``omniglot`` model's metric (none for a Siamese head's probability)
        "val_eer_threshold": None if scorer.metric.higher_is_closer else pairs.eer_threshold,
    }


def train_omniglot(
    cfg: OmniglotTrainConfig,
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train per ``cfg``, writing checkpoints and logs to ``out_dir``.

    ``resume`` continues from ``out_dir/last.pt`` (same config: same schedule and data
    order, so an interrupted run ends exactly as an uninterrupted one would);
    ``stop_after`` ends this call after that many epochs, as an interruption would.
    """
    if cfg.method not in _METHOD_CLASSES:
        raise ValueError(f"unknown method {cfg.method!r}; choose one of {', '.join(METHODS)}")
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)

    data = _load_data(cfg)
    spec = cfg.net_spec()
    net = build_embedding(spec)
    method = _METHOD_CLASSES[cfg.method](cfg, data, net)
    params = list(net.parameters()) + (list(method.extra.parameters()) if method.extra else [])
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    total_steps = cfg.epochs * cfg.steps_per_epoch

    step, epoch, elapsed, cpu, best, wall_before = 0, 0, 0.0, 0.0, -1.0, 0.0
    history: list[dict[str, Any]] = []
    last_path, best_path = out / "last.pt", out / "best.pt"
    if resume and last_path.is_file():
        payload = read_checkpoint(last_path)
        net.load_state_dict(payload["net"])
        state = payload["state"]
        if method.extra is not None and state.get("extra") is not None:
            method.extra.load_state_dict(state["extra"])
        optimizer.load_state_dict(state["optimizer"])
        step, epoch, elapsed, best = state["step"], state["epoch"], state["elapsed"], state["best"]
        cpu = state.get("cpu", 0.0)
        wall_before = state.get("wall", elapsed)
        rng.bit_generator.state = state["numpy_rng"]
        gen.set_state(state["torch_gen"])
        torch.set_rng_state(state["torch_rng"])
        history = state.get("history", [])

    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    n_params = count_parameters(net)
    head = method.extra.head if isinstance(method.extra, SiameseBCELoss) else None
    bar = _progress(None if cfg.epochs >= _UNLIMITED else total_steps, step, progress)
    budget = cfg.time_budget

    def wall() -> float:
        return wall_before + time.perf_counter() - start

    log = (out / "log.jsonl").open("a")
    last_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, epoch + stop_after)
    try:
        while epoch < last_epoch and not (epoch > 0 and _spent(history, budget)):  # >= 1 epoch
            net.train()
            losses = []
            t0, cpu0 = time.perf_counter(), time.process_time()
            for _ in range(cfg.steps_per_epoch):
                frac = step / max(total_steps, 1)
                if budget:
                    frac = max(frac, wall() / budget)
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * _lr_factor(frac)
                loss = method.loss(rng, gen)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", best=f"{max(best, 0):.4f}")
                if budget is not None and round(wall(), 1) >= budget:  # as the record will show it
                    break
            elapsed += time.perf_counter() - t0
            cpu += time.process_time() - cpu0
            epoch += 1
            val = _validate(net, spec, head, data.val, cfg.val_episodes) if cfg.val_episodes > 0 else {}
            record = {
                "epoch": epoch,
                "step": step,
                "train_seconds": round(elapsed, 1),
                "cpu_seconds": round(cpu, 1),
                "wall_seconds": round(wall(), 1),
                "loss": float(np.mean(losses)) if losses else None,
                "lr": optimizer.param_groups[0]["lr"],
                **val,
            }
            history.append(record)
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.write(json.dumps(record))
            metrics = {
                **val,
                "parameters": n_params,
                "train_seconds": elapsed,
                "cpu_seconds": cpu,
                "wall_seconds": wall(),
                "steps": step,
            }
            score = val.get("val_20way_1shot", float(epoch))  # without validation: the latest
            if score > best:
                best = score
                save_checkpoint(best_path, spec, net, head, cfg.to_dict(), metrics=metrics)
            state = {
                "extra": method.extra.state_dict() if method.extra is not None else None,
                "optimizer": optimizer.state_dict(),
                "step": step,
                "epoch": epoch,
                "elapsed": elapsed,
                "cpu": cpu,
                "wall": wall(),
                "best": best,
                "numpy_rng": rng.bit_generator.state,
                "torch_gen": gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "history": history,
            }
            save_checkpoint(last_path, spec, net, head, cfg.to_dict(), state=state, metrics=metrics)
        finished = epoch >= cfg.epochs or _spent(history, budget)
        if finished and cfg.val_episodes > 0 and best_path.is_file():
            _add_tta_validation(best_path, data.val, cfg.val_episodes)
    finally:
        bar.close()
        log.close()
    return TrainResult(out, best_path, last_path, best, step, elapsed, n_params, history)


def _spent(history: list[dict], budget: float | None) -> bool:
    """Whether the time budget is spent, judged on the wall time the last epoch's record
    shows (loading and validation included), so the log and the decision always agree."""
    return budget is not None and bool(history) and history[-1]["wall_seconds"] >= budget


def _add_tta_validation(best_path: Path, val: OmniglotSplit, episodes: int) -> None:
    """Validate the best checkpoint again with shift TTA (facegate's default for the
    ``omniglot`` model) and store those figures, its EER threshold among them, beside
    the plain ones as ``val_*_tta``."""
    best = load_checkpoint(best_path)
    tta = _validate(best.net, best.spec, best.head, val, episodes, tta=True)
    metrics = {**best.metrics, **{f"{k}_tta": v for k, v in tta.items()}}
    save_checkpoint(best_path, best.spec, best.net, best.head, best.config, metrics=metrics)


def _progress(total: int | None, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)
