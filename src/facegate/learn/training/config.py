"""The knobs of the training runs, each default once (no torch: the CLI builds its options from them).

Every field of :class:`OmniglotTrainConfig` is a ``facegate train omniglot`` option and
every field of :class:`FinetuneConfig` a ``facegate train faces`` one
(``steps_per_epoch`` is ``--steps-per-epoch``); the ``help`` metadata is the option's help,
``choices`` its choices, ``min`` its lower bound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["METHODS", "NN4SMALL2_STAGES", "FinetuneConfig", "OmniglotTrainConfig"]

#: the epoch count of a run bounded by its time budget only
_UNLIMITED = 1_000_000

METHODS = ("siamese-bce", "triplet", "contrastive", "proto", "proto-loo", "cosface")


def _help(text: str, **more: Any) -> dict[str, Any]:
    return {"help": text, **more}


@dataclass
class OmniglotTrainConfig:
    """Every knob of a training run; stored in checkpoints."""

    method: str = field(default="proto-loo", metadata=_help("Training objective.", choices=METHODS))
    seed: int = field(default=0, metadata=_help("Seed of every random choice."))
    epochs: int | None = field(default=None, metadata=_help("[20; with --time-budget: as many as fit]"))
    steps_per_epoch: int = field(default=200, metadata=_help("Steps between validations."))
    time_budget: float | None = field(
        default=None, metadata=_help("Stop after this many seconds of wall time (validation included).")
    )
    lr: float | None = field(default=None, metadata=_help("Adam learning rate [2e-3 for proto/proto-loo, else 1e-3]."))
    weight_decay: float = field(default=0.0, metadata=_help("Adam weight decay."))
    arch: str = field(
        default="conv", metadata=_help("Network: the compact CNN or Koch et al.'s.", choices=("conv", "koch"))
    )
    input_size: int = field(default=28, metadata=_help("Side the 105x105 images are downsampled to."))
    center: bool = field(default=False, metadata=_help("Centre the ink first."))
    fit: float | None = field(
        default=0.8, metadata=_help("Scale and centre the ink to this share of the frame (0: off).")
    )
    channels: tuple[int, ...] = field(default=(32, 64, 64, 128), metadata=_help("Conv widths."))
    dim: int | None = field(default=None, metadata=_help("Add a linear projection to this many dimensions."))
    #: the background archive's folder (the CLI's --data)
    data_root: str | None = field(default=None, metadata={"cli": False})
    val_alphabets: int = field(default=3, metadata=_help("Background alphabets held out for validation."))
    train_alphabets: int | None = field(default=None, metadata=_help("Use only this many training alphabets."))
    rotations: bool = field(default=True, metadata=_help("90/180/270° as new classes."))
    affine: bool = field(default=True, metadata=_help("Small random affine distortions."))
    within_alphabet: float = field(default=0.6, metadata=_help("Share of within-alphabet batches."))
    batch_size: int = field(default=128, metadata=_help("Images per batch (pairs for the pair methods)."))
    per_class: int | None = field(default=None, metadata=_help("Triplet, proto-loo: images per class (P×K) [4, 2]."))
    margin: float | None = field(default=None, metadata=_help("Loss margin [method default]."))
    n_way: int = field(default=60, metadata=_help("Proto: classes per episode."))
    k_shot: int = field(default=1, metadata=_help("Proto: support images per class."))
    n_query: int = field(default=5, metadata=_help("Proto: query images per class."))
    scale: float = field(default=30.0, metadata=_help("CosFace scale."))
    val_episodes: int = field(
        default=1000, metadata=_help("Validation episodes after each epoch (0: none; best.pt is the latest).")
    )
    threads: int = field(default=2, metadata=_help("PyTorch CPU threads."))

    def __post_init__(self) -> None:
        if self.epochs is None:
            self.epochs = _UNLIMITED if self.time_budget else 20
        if self.lr is None:
            self.lr = 2e-3 if self.method in ("proto", "proto-loo") else 1e-3
        if self.per_class is None:
            self.per_class = 2 if self.method == "proto-loo" else 4

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OmniglotTrainConfig:
        known = {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}
        if "channels" in known:
            known["channels"] = tuple(known["channels"])
        return cls(**known)

    def net_spec(self) -> Any:
        """The :class:`~facegate.learn.nets.omniglot.NetSpec` of this run's network (imports torch)."""
        from facegate.learn.nets.omniglot import NetSpec

        normalized = self.method in ("triplet", "contrastive", "cosface")
        metric = {"siamese-bce": "siamese-head", "cosface": "cosine"}.get(self.method, "euclidean")
        return NetSpec(
            arch=self.arch,
            input_size=self.input_size,
            center=self.center,
            fit=self.fit,
            channels=tuple(self.channels),
            dim=self.dim,
            normalize=normalized,
            metric=metric,
            head=self.method == "siamese-bce",
        )

    def effective_margin(self) -> float:
        if self.margin is not None:
            return self.margin
        return {"triplet": 0.2, "contrastive": 0.5, "cosface": 0.1}.get(self.method, 0.0)


#: nn4.small2's stages in order (:data:`facegate.learn.nets.nn4small2.STAGES`, checked equal by a test)
NN4SMALL2_STAGES = (
    "stem",
    "inception_3a",
    "inception_3b",
    "inception_3c",
    "inception_4a",
    "inception_4e",
    "inception_5a",
    "inception_5b",
    "head",
)


@dataclass
class FinetuneConfig:
    """How to fine-tune nn4.small2 on faces. ``time_budget`` (seconds) stops training early, after a step."""

    epochs: int = field(default=5, metadata=_help("Passes over the training photos.", min=1))
    time_budget: float | None = field(default=None, metadata=_help("Stop training after SECONDS.", min=0))
    holdout_people: int = field(
        default=10, metadata=_help("People kept out of training to measure verification accuracy on.", min=2)
    )
    people_per_batch: int = field(default=8, metadata=_help("P of a P×K batch.", min=2))
    images_per_person: int = field(default=4, metadata=_help("K of a P×K batch.", min=2))
    lr: float = field(default=1e-3, metadata=_help("Adam learning rate."))
    weight_decay: float = field(default=1e-4, metadata=_help("Adam weight decay."))
    margin: float = field(default=0.2, metadata=_help("Triplet loss margin α."))
    seed: int = field(default=0, metadata=_help("Seed of every random choice."))
    #: first trained stage with pretrained weights ("stem" trains everything)
    train_from: str = field(
        default="inception_3c",
        metadata=_help(
            "First trained stage when starting from weights (earlier ones stay frozen).", choices=NN4SMALL2_STAGES
        ),
    )
    augment: bool = field(default=True, metadata=_help("Flip, turn, scale, shift and relight photos on the fly."))
    crop: str = field(
        default="align",
        metadata=_help(
            "align: HOG face + OpenFace alignment (whole photo if no face); whole: resize the photo.",
            choices=("align", "whole"),
        ),
    )
    recalibrate_bn: bool = field(
        default=True, metadata=_help("Re-estimate the trained layers' batch-norm statistics first.")
    )
    #: torch CPU threads while fine-tuning (None: torch's default). On a shared, busy
    #: machine 1 can be many times faster than several, which then wait on each other.
    threads: int | None = field(
        default=None, metadata=_help("PyTorch CPU threads (default: PyTorch's; 1 is often fastest when busy).", min=1)
    )
