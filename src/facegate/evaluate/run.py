"""From files to figures: embed (through the cache), score and measure one system.

A *system* is what a user deploys: model, detector, metric, test-time
augmentation. These helpers tie the data-set loaders, the embedding cache and the
metric modules together; the CLI and ``bench/`` call them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from facegate.datasets.folders import FaceSet
from facegate.datasets.lfw import Pair, pair_images
from facegate.decisions import find_threshold
from facegate.decisions.table import ThresholdUnavailableError
from facegate.distances import get_metric
from facegate.evaluate.cache import Embedded, embed_files
from facegate.evaluate.identification_protocol import IdentificationResult, identification_kfold
from facegate.evaluate.metrics import accuracy
from facegate.evaluate.verification import FMR_TARGETS, VerificationResult, score_pairs, verification_metrics
from facegate.models import get_model
from facegate.pipeline import DEFAULT_DETECTOR, DEFAULT_MODEL, DEFAULT_TTA


@dataclass(frozen=True)
class System:
    """One configuration under test."""

    model: str = DEFAULT_MODEL
    detector: str = DEFAULT_DETECTOR
    metric: str = ""
    tta: bool = DEFAULT_TTA
    upsample: int | None = None

    @classmethod
    def make(
        cls,
        model: str = DEFAULT_MODEL,
        detector: str = DEFAULT_DETECTOR,
        metric: str | None = None,
        tta: bool = DEFAULT_TTA,
        upsample: int | None = None,
    ) -> System:
        """A system with the model's default metric when none is named (names are checked)."""
        chosen = metric or get_model(model).default_metric
        get_metric(chosen)
        from facegate.detection import get_detector

        get_detector(detector)
        return cls(model, detector, chosen, tta, upsample)

    @property
    def name(self) -> str:
        return f"{self.model}/{self.detector}/{self.metric}" + ("+tta" if self.tta else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "detector": self.detector,
            "metric": self.metric,
            "tta": self.tta,
            "upsample": "auto" if self.upsample is None else self.upsample,
        }


@dataclass(frozen=True)
class EmbedOptions:
    """Where embeddings are cached and how they are computed."""

    cache_dir: str | Path | None = None
    use_cache: bool = True
    workers: int | None = None
    progress: bool = False


def embed(paths: Sequence[str], system: System, options: EmbedOptions) -> Embedded:
    return embed_files(
        paths,
        system.model,
        system.detector,
        tta=system.tta,
        upsample=system.upsample,
        cache_dir=options.cache_dir,
        use_cache=options.use_cache,
        workers=options.workers,
        progress=options.progress,
    )


def evaluate_pairs(
    pairs: Sequence[Pair],
    images: str | Path,
    system: System,
    options: EmbedOptions | None = None,
    folds: int = 10,
    seed: int = 0,
    fmr_targets: Sequence[float] = FMR_TARGETS,
) -> tuple[VerificationResult, Embedded]:
    """Every verification figure of ``system`` on ``pairs`` (paths relative to ``images``), and the embeddings.

    Besides the k-fold accuracy, the accuracy at the threshold ``verify`` would use
    (user calibration, else packaged) is reported when one exists.
    """
    options = options or EmbedOptions()
    root = Path(images)
    files = [str(root / p) for p in pair_images(list(pairs))]
    embedded = embed(files, system, options)
    scores = score_pairs(pairs, root, embedded, system.metric)
    used = set(files)
    failed = {p: e for p, e in embedded.failures().items() if p in used}
    result = verification_metrics(scores, system.to_dict(), failed, len(files), folds, seed, fmr_targets)
    try:
        t = find_threshold(system.model, system.metric)
    except ThresholdUnavailableError:
        return result, embedded
    configured = accuracy(scores.distances, scores.labels, t)
    return replace(result, configured_threshold=t, configured_accuracy=configured), embedded


def evaluate_identification(
    faces: FaceSet,
    system: System,
    options: EmbedOptions | None = None,
    folds: int = 2,
    seed: int = 0,
    unknown_fraction: float = 0.5,
) -> tuple[IdentificationResult, Embedded]:
    """Closed- and open-set identification of ``system`` on a labelled set, and its embeddings."""
    embedded = embed(faces.files(), system, options or EmbedOptions())
    result = identification_kfold(
        embedded.vectors,
        faces.labels,
        system.to_dict(),
        embedded.failures(),
        k=folds,
        seed=seed,
        unknown_fraction=unknown_fraction,
    )
    return result, embedded
