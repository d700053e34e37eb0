"""The gallery: enrolled people, 1:K identification and the 1:1 door check.

The SQLite store is the truth; an in-memory matrix of every template's embedding
mirrors it (rebuilt after each write, and when another process changes the file),
so identification is one vectorised distance computation over all templates.

Decisions are made at an operating point, not a fixed distance: the door check
allows a target false-match rate for the claimed person (default 1 in 1,000) and
identification a target false-positive identification rate (default 1% of
strangers), which becomes a stricter threshold as the gallery grows
(:mod:`facegate.decisions`).
"""

from __future__ import annotations

import os
import time
import unicodedata
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from facegate.decisions import (
    DEFAULT_FUSION,
    OperatingPoint,
    identification_point,
    mean_embedding,
    scoring_for,
    verification_point,
)
from facegate.decisions.fusion import Fusion
from facegate.decisions.normalisation import CohortStats
from facegate.decisions.quality import DEFAULT_GATE, QualityGate
from facegate.decisions.scoring import Scoring
from facegate.detection import Detector
from facegate.distances import get_metric
from facegate.errors import GalleryError, InvalidNameError
from facegate.gallery.ann import (
    ANN_METRICS,
    INDEX,
    INDEXES,
    SEARCHES,
    AnnSearch,
    Searcher,
    index_kind,
    resolve_search,
    server_index_path,
)
from facegate.gallery.ann import available as ann_available
from facegate.gallery.audit import Event, default_source
from facegate.gallery.backends import backend_for, open_store, stored_meta
from facegate.gallery.index import TemplateIndex
from facegate.gallery.results import Candidate, EnrollManyReport, EnrollResult, GalleryState, IdentifyResult
from facegate.gallery.store import GalleryStore, NewTemplate, PersonRecord
from facegate.images import ImageInput, image_sha256, read_bytes
from facegate.models import MODELS, EmbeddingModel, get_model
from facegate.pipeline import (
    DEFAULT_DETECTOR,
    DEFAULT_MODEL,
    DEFAULT_MULTI_FACE,
    DEFAULT_TTA,
    EmbeddingSettings,
    Face,
    MultiFacePolicy,
    represent,
    represent_many,
    tta_name,
)
from facegate.verification import VerifyResult, decision_rates

#: frames of one probe: several images of the same face (a door camera's burst)
Probe = ImageInput | Sequence[ImageInput]


class Gallery:
    """A persistent set of enrolled people for one embedding model.

    >>> gallery = Gallery("office.sqlite")            # doctest: +SKIP
    >>> gallery.enroll("younes", ["younes.jpg"])      # doctest: +SKIP
    >>> gallery.identify("camera_0.jpg").identity     # doctest: +SKIP
    'younes'

    ``fmr`` is the false-match rate a door check allows for the claimed person
    (default 1e-3), ``fpir`` the share of strangers identification may name as
    someone (default 1e-2); the thresholds follow from the calibrated curve of
    (model, metric) and the gallery's size. A raw distance ``threshold`` replaces
    both. ``fusion`` says how a person's templates are combined (closest, mean or
    both), ``normalise`` whether scores are normalised against a cohort (default:
    as calibrated), and ``quality`` refuses to decide on probes too small, turned
    or blurred to trust (a :class:`~facegate.decisions.quality.QualityGate`; None
    turns it off).

    ``index`` chooses how people are searched (:mod:`facegate.gallery.ann`):
    ``exact`` scores every template, ``ann`` asks an approximate index (kept beside
    the gallery file) for candidates and scores those exactly, ``auto`` (the
    default, or ``$FACEGATE_INDEX``) is exact below
    :data:`~facegate.gallery.ann.ANN_MIN_TEMPLATES` templates and the index above.
    ``ann`` is faiss's inverted lists (``ivf``); ``hnsw`` asks hnswlib's graph instead.
    A PostgreSQL gallery's ``auto``, ``ivf`` and ``hnsw`` read its templates and search them
    in this process (the index kept in this machine's cache,
    :func:`~facegate.gallery.ann.server_index_path`, and brought up to date when another
    connection changes people); its ``ann`` searches in SQL (pgvector's HNSW index), as
    ``auto`` does where the in-process index is not installed.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        model_name: str | EmbeddingModel | None = None,
        detector_backend: str | Detector = DEFAULT_DETECTOR,
        distance_metric: str | None = None,
        threshold: float | None = None,
        tta: bool | None = None,
        fmr: float | None = None,
        fpir: float | None = None,
        fusion: Fusion = DEFAULT_FUSION,
        normalise: bool | None = None,
        quality: QualityGate | None = DEFAULT_GATE,
        create: bool = True,
        index: str | None = None,
    ) -> None:
        self.index = index or os.environ.get("FACEGATE_INDEX") or "auto"
        if self.index not in SEARCHES:
            raise GalleryError(f"unknown index {self.index!r}; use one of {', '.join(SEARCHES)}")
        self._ann: AnnSearch | None = None
        recorded = stored_meta(path)
        stored = recorded.get("model")
        if stored is not None and model_name is None and stored not in MODELS:
            raise GalleryError(
                f"the gallery {path} was built with the model {stored!r}, which is not available here "
                f"(known: {', '.join(MODELS.names())})"
            )
        #: the model and detector that embed photos: registry names, or instances given (``weights=`` in code)
        name = model_name or stored or DEFAULT_MODEL
        self.model = model = get_model(name)
        self.detector = detector_backend
        #: what represent is handed: the name when a name was given (worker processes build their own copy)
        self._embedder = name
        self.model_name = name if isinstance(name, str) else model.name
        self.detector_backend = detector_backend if isinstance(detector_backend, str) else detector_backend.name
        self.metric_name = distance_metric or model.default_metric
        self._metric = get_metric(self.metric_name)
        self.scoring = scoring_for(self.model_name, self.metric_name, normalise, threshold)
        self.raw_threshold = threshold
        self.fmr = fmr
        self.fpir = fpir
        self.fusion = fusion
        self.quality = quality
        #: flip test-time augmentation: as given, else as the gallery recorded, else the default
        self.tta = tta if tta is not None else recorded.get("tta", tta_name(DEFAULT_TTA)) == tta_name(True)
        #: what makes this gallery's embeddings; a gallery refuses to open with other settings than its own
        self.settings = EmbeddingSettings.of(model, self.tta)
        self._store = open_store(
            path,
            self.model_name,
            model.dim,
            create=create,
            settings=self.settings.to_dict(),
            compared=EmbeddingSettings.COMPARED,
        )
        self._reload()
        if self.scoring.curve is not None:  # an impossible target fails here, not at the door
            verification_point(self.scoring, threshold, fmr)
            self.identification_point  # noqa: B018

    # -- lifecycle -----------------------------------------------------------
    def close(self) -> None:
        if self._ann is not None and self._ann.unsaved:
            self._ann.save()
        self._store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and unicodedata.normalize("NFC", name) in self._enrolled

    @property
    def path(self) -> str:
        return self._store.path

    @property
    def template_count(self) -> int:
        return len(self._index)

    @property
    def store(self) -> GalleryStore:
        """The gallery's store: its SQLite file, audit log and API keys included."""
        return self._store

    @property
    def search_kind(self) -> str:
        """How people are searched now: ``exact`` or ``ann`` (``index`` resolved at the current size)."""
        self._sync()
        return self._search

    @property
    def ann(self) -> AnnSearch | None:
        """The in-process graph, when the gallery searches with one."""
        return self._ann

    def _searcher(self) -> Searcher:
        """Who finds candidates: the store itself when it searches (pgvector), else the in-process index."""
        return self._store_searcher() or self._ann  # type: ignore[return-value]

    def _store_searcher(self) -> Searcher | None:
        """The store's own search (pgvector's HNSW in SQL) for ``index="ann"``. ``auto`` and the
        in-process indexes (``ivf``, ``hnsw``) search a server's templates in this process, ``auto``
        in SQL only where that index cannot serve (its library missing, or the metric): at 1M
        templates pgvector's default search found exact search's best person for 0.73 of the
        probes in 4.2 ms, the in-process index for all of them in 0.9 ms (bench/pgvector_ab.py)."""
        if self.index in INDEXES or (self.index == "auto" and self._in_process_serves(INDEX)):
            return None
        return getattr(self._store, "searcher", None)

    def _in_process_serves(self, kind: str) -> bool:
        """Whether the in-process index ``kind`` can search this gallery: its library is installed and
        it indexes the gallery's metric."""
        return self.metric_name in ANN_METRICS and ann_available(kind)

    def _reload(self) -> None:
        previous, previous_stats = getattr(self, "_index", None), getattr(self, "_person_stats", None)
        self._version = self._store.data_version()
        self._people_version = self._store.people_version()
        store_searches = self._store_searcher() is not None
        loader = getattr(self._store, "load_templates", None)
        ids = None
        if self.index != "exact" and loader is not None and not store_searches:
            ids, owners, matrix, self._names = loader()
        else:
            owners, matrix, self._names = self._store.load_matrix()
        self._enrolled = set(self._names.values())
        self._index = TemplateIndex(owners, matrix, self._names, self._metric, self.fusion)
        self._search = resolve_search(self.index, len(self._index))
        kind = index_kind(self.index)
        missing = not store_searches and (ids is None or not self._in_process_serves(kind))
        if self._search == "ann" and missing:
            if self.index != "auto":
                why = (
                    f"{INDEXES[kind].module} is not installed: pip install 'facegate[ann]'"
                    if not ann_available(kind)
                    else (f"metric {self.metric_name!r}, store {type(self._store).__name__}")
                )
                raise GalleryError(f"no approximate index for this gallery ({why}); use index='exact'")
            self._search = "exact"
        fresh = None
        if self._search == "ann" and not store_searches:
            if self.scoring.norm is not None:  # this index's people's statistics, which its penalty reads
                self._person_stats = fresh = _LazyStats(self.scoring, self._index.means)
            if self._ann is None:
                identity = self._store.identity()
                local = backend_for(self._store.path).is_file  # a file, or :memory: (no files beside it)
                self._ann = AnnSearch.open(
                    self._store.path if local else server_index_path(self._store.path, identity),
                    identity,
                    self._people_version,
                    ids,
                    owners,
                    matrix,
                    ANN_METRICS[self.metric_name],
                    kind,
                    _ScorePenalty(self) if fresh is not None else None,
                )
            else:
                self._ann.sync(ids, owners, matrix, self._people_version)
        elif self._ann is not None:  # shrank below the switch: keep the files up to date, search exactly
            if self._ann.unsaved:
                self._ann.save()
            self._ann = None
        if self._search == "exact":
            self._person_stats = self.scoring.stats(self._index.means) if len(self._index) else None
        else:
            self._person_stats = self._large_stats(previous, previous_stats, fresh)
        self._identification: OperatingPoint | None = None  # computed when first needed

    def _large_stats(
        self, previous: TemplateIndex | None, previous_stats: object, fresh: _LazyStats | None = None
    ) -> _LazyStats:
        """The cohort statistics of a gallery searched through candidates: computed once for
        everyone and kept with the graph (its files), then per changed person; a person
        missing from them is computed when first a candidate. ``fresh``: those the index's
        penalty computed while it was built or brought up to date (all of them when built)."""
        stats = fresh if fresh is not None else _LazyStats(self.scoring, self._index.means)
        ann = self._ann
        if ann is None or self.scoring.norm is None:
            return stats
        key = _stats_key(self.scoring)
        if isinstance(previous_stats, _LazyStats) and previous is not None:  # this session's, moved
            stats = previous_stats.moved(previous.people, self._index.people, self._index.means, ann.touched)
        elif np.array_equal(ann.kept.get("key", np.zeros(0)), key):  # kept with the graph
            stats.restore(ann.kept, self._index.people, ann.touched)
        computed = stats.computed > 0 or (bool(len(stats.mean)) and bool(np.isnan(stats.mean).any()))
        if computed:
            stats.rows(np.flatnonzero(np.isnan(stats.mean)))
        self._person_stats = stats
        ann.keep_with_graph(
            lambda: {"key": key, "people": self._index.people, **self._person_stats.arrays()}, changed=computed
        )
        return stats

    def _changed(
        self, bump: int, added: Sequence[tuple[int, str, Sequence[int], np.ndarray]] = (), removed: int | None = None
    ) -> None:
        """After this gallery's own write: ``bump`` changes to people or templates, ``added``
        (person id, name, template ids, vectors) and ``removed`` (a person id).

        Exact search reloads everything. With a graph, the in-memory index, the graph and
        the cohort statistics change by what was written (no rebuild), unless another
        connection changed people too (the counter moved by more than ``bump``): then
        everything is read again."""
        if self._search == "exact":
            self._reload()
            return
        version = self._store.people_version()
        if version != self._people_version + bump:
            self._reload()
            return
        self._people_version = version
        if removed is not None:
            self._names.pop(removed, None)
        for person, name, _, _ in added:
            self._names[person] = name
        old = self._index
        vectors = [np.asarray(v, np.float32).reshape(len(ids), -1) for _, _, ids, v in added]
        new_owners = [np.full(len(ids), p, np.int64) for p, _, ids, _ in added]
        last = old.people[-1] if len(old.people) else -1
        if removed is None and added and min(p for p, _, _, _ in added) > last:  # new people: appended
            self._index = old.extended(np.concatenate(new_owners), np.concatenate(vectors))
        else:
            keep = old.owners != removed if removed is not None else np.ones(len(old), bool)
            owners = np.concatenate([old.owners[keep], *new_owners])
            matrix = np.concatenate([old.matrix[keep], *vectors]) if vectors else old.matrix[keep]
            self._index = TemplateIndex(owners, matrix, self._names, self._metric, self.fusion)
        self._enrolled = set(self._names.values())
        if isinstance(self._person_stats, _LazyStats):
            changed = [person for person, _, _, _ in added]
            self._person_stats = self._person_stats.moved(old.people, self._index.people, self._index.means, changed)
        if self._ann is not None:
            if removed is not None:
                self._ann.remove_person(removed, version)
            for person, _, ids, vectors in added:
                self._ann.add(ids, person, vectors, version)
            if removed is None and not added:
                self._ann.touch(version)
        self._identification = None

    # -- operating points ---------------------------------------------------------
    def door_point(self, name: str) -> OperatingPoint:
        """The operating point of a door check for ``name`` (their template count matters)."""
        self._sync()
        return self._door_point(self._store.person_id(check_name(name)))

    def _door_point(self, person: int) -> OperatingPoint:
        templates = int(self._index.counts[self._index.row_of(person)]) if person in self._index.people else 0
        return verification_point(self.scoring, self.raw_threshold, self.fmr, templates)

    @property
    def identification_point(self) -> OperatingPoint:
        """The open-set operating point at the gallery's current size."""
        self._sync()
        return self._identification_point()

    def _identification_point(self) -> OperatingPoint:
        """:attr:`identification_point` of the index as it is (computed once per change)."""
        if self._identification is None:
            self._identification = identification_point(self.scoring, self._index.counts, self.raw_threshold, self.fpir)
        return self._identification

    def state(self) -> GalleryState:
        """People, templates and the error rates expected at the current size."""
        self._sync()
        counts = self._index.counts
        if self.scoring.unavailable:
            return GalleryState(len(counts), int(counts.sum()), {}, {}, self.scoring.kind, [self.scoring.unavailable])
        typical = int(np.median(counts)) if len(counts) else 1
        door = verification_point(self.scoring, self.raw_threshold, self.fmr, typical)
        return GalleryState.describe(
            len(counts), int(counts.sum()), typical, door, self.identification_point, self.scoring
        )

    def _sync(self) -> None:
        """Rebuild the index when another connection changed people or templates (not for an audit event)."""
        version = self._store.data_version()
        if version != self._version:
            self._version = version
            if self._store.people_version() != self._people_version:
                self._reload()

    # -- enrollment ------------------------------------------------------------
    def _templates(self, photos: Sequence[ImageInput], multi_face: MultiFacePolicy) -> list[tuple[Face, str]]:
        if isinstance(photos, ONE_IMAGE) or not isinstance(photos, Sequence):
            photos = [photos]  # type: ignore[list-item]
        if not photos:
            raise GalleryError("enrollment needs at least one photo")
        out = []
        for i, photo in enumerate(photos):
            label = str(photo) if isinstance(photo, (str, Path)) and len(str(photo)) < 300 else f"photo {i + 1}"
            source = photo if isinstance(photo, (np.ndarray, Image.Image)) else read_bytes(photo)  # read once
            face = represent(source, self._embedder, self.detector, multi_face, tta=self.tta, label=label)[0]
            out.append((face, image_sha256(source)))
        return out

    def _new(self, faces: list[tuple[Face, str]]) -> list[NewTemplate]:
        return [NewTemplate(f.embedding, sha, f.facial_area.to_dict(), f.engine, f.tta) for f, sha in faces]

    def enroll(
        self,
        name: str,
        photos: Sequence[ImageInput] | ImageInput,
        multi_face: MultiFacePolicy = DEFAULT_MULTI_FACE,
        *,
        event: Event | None = None,
    ) -> EnrollResult:
        """Enroll a new person from one or more photos, all or nothing.

        Every photo is embedded before anything is written, so one bad photo (no
        face, not an image) raises and leaves the gallery exactly as it was. The
        audit log records the enrolment in the same transaction; ``event`` says who
        asked (endpoint, key label, client: see :class:`~facegate.gallery.audit.Event`).
        """
        name = check_name(name)
        faces = self._templates(photos, multi_face)  # type: ignore[arg-type]
        person, ids = self._store.add_person(name, self._new(faces), _change(event, "enroll", name, faces))
        self._changed(1 + len(ids), [(person, name, ids, np.stack([f.embedding for f, _ in faces]))])
        return _enrolled(name, ids, faces)

    def add_photos(
        self,
        name: str,
        photos: Sequence[ImageInput] | ImageInput,
        multi_face: MultiFacePolicy = DEFAULT_MULTI_FACE,
        *,
        event: Event | None = None,
    ) -> EnrollResult:
        """Add photos (templates) to an enrolled person, all or nothing (with its audit event)."""
        name = check_name(name)
        self._store.person_id(name)  # an unknown person fails before any photo is embedded
        faces = self._templates(photos, multi_face)  # type: ignore[arg-type]
        person, ids = self._store.add_templates(name, self._new(faces), _change(event, "add_photos", name, faces))
        self._changed(len(ids), [(person, name, ids, np.stack([f.embedding for f, _ in faces]))])
        return _enrolled(name, ids, faces)

    def enroll_many(
        self, people: Mapping[str, Sequence[ImageInput]], add: bool = False, progress: bool = False
    ) -> EnrollManyReport:
        """Enroll many people at once (embedding in parallel), each person all or nothing.

        People already enrolled are skipped unless ``add``; a person with any photo
        that fails (no face, bad image) is not enrolled and appears in ``failed``.
        """
        todo = {check_name(n): list(p) for n, p in people.items() if add or n not in self}
        skipped = [n for n in people if n not in todo]
        photos = [(name, photo) for name, ps in todo.items() for photo in ps]
        outputs = represent_many(
            [photo for _, photo in photos],
            self._embedder,
            self.detector,
            tta=self.tta,
            progress=progress,
            labels=[str(photo) if isinstance(photo, (str, Path)) else name for name, photo in photos],
        )
        by_person: dict[str, list[tuple[Face, str] | Exception]] = {name: [] for name in todo}
        for (name, photo), out in zip(photos, outputs, strict=True):
            by_person[name].append(out if isinstance(out, Exception) else (out[0], image_sha256(photo)))
        report = EnrollManyReport()
        for name, items in by_person.items():
            errors = [str(item) for item in items if isinstance(item, Exception)] or ([] if items else ["no photos"])
            if errors:
                report.failed[name] = "; ".join(errors)
                continue
            templates = self._new(items)  # type: ignore[arg-type]
            try:
                if name in self:
                    self._store.add_templates(name, templates, _change(None, "add_photos", name, items))
                else:
                    self._store.add_person(name, templates, _change(None, "enroll", name, items))
            except GalleryError as exc:
                report.failed[name] = str(exc)
                continue
            report.enrolled[name] = len(templates)
        report.skipped.extend(skipped)
        self._reload()
        return report

    def add_embeddings(self, name: str, embeddings: np.ndarray, sources: Sequence[str] | None = None) -> None:
        """Enroll (or extend) ``name`` from precomputed embeddings of this gallery's model."""
        vectors = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        self.add_embeddings_bulk({name: vectors}, {name: list(sources)} if sources is not None else None)

    def add_embeddings_bulk(
        self, people: Mapping[str, np.ndarray], sources: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        """Import precomputed embeddings for many people in one transaction (all or nothing).

        ``sources`` names where each embedding came from (default: a hash of the
        vector itself); a person's sources must be distinct.
        """
        batch = {}
        for name, embeddings in people.items():
            vectors = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
            keys = list(sources[name]) if sources is not None else [image_sha256(v) for v in vectors]
            if vectors.size == 0 or vectors.shape[-1] == 0:
                raise GalleryError(f"no embeddings for {name!r}: a person needs at least one; nothing was stored")
            batch[check_name(name)] = [NewTemplate(v, k, {}) for v, k in zip(vectors, keys, strict=True)]
        events = {
            name: _change(None, "add_photos" if name in self else "enroll", name, detail={"templates": len(templates)})
            for name, templates in batch.items()
        }
        written = self._store.add_many(batch, events)
        added = [
            (person, name, ids, np.stack([t.embedding for t in batch[name]]))
            for name, (person, ids, _) in written.items()
        ]
        self._changed(sum(len(ids) + int(new) for _, ids, new in written.values()), added)

    def remove(self, name: str, *, event: Event | None = None) -> int:
        """Remove a person and all their templates; returns how many templates went."""
        name = check_name(name)
        person = self._store.person_id(name) if self._search != "exact" else None
        removed = self._store.remove_person(name, _change(event, "remove", name))
        self._changed(removed + 1, removed=person)
        return removed

    def rename(self, old: str, new: str, *, event: Event | None = None) -> None:
        old, new = check_name(old), check_name(new)
        person = self._store.rename_person(old, new, _change(event, "rename", old, detail={"new_name": new}))
        if self._search != "exact" and isinstance(person, int) and person in self._names:
            self._names[person] = new
        self._changed(1)

    def people(self) -> list[PersonRecord]:
        return self._store.people()

    # -- search ------------------------------------------------------------------
    def _call_scoring(self, threshold: float | None) -> Scoring:
        """The gallery's scoring, or plain distances for a call's raw ``threshold``."""
        return self.scoring if threshold is None else scoring_for(self.model_name, self.metric_name, False, threshold)

    def _rank(self, embedding: np.ndarray, scoring: Scoring, top_k: int, claimed: int | None = None):
        """The ``top_k`` best-scoring people, their person ids, a person's exact distance and score
        (a function of a person id) and the probe's cohort statistics.

        Exact search scores every person. With a graph (or a store that searches
        itself) only the candidates it returns are scored, each exactly over all their
        templates, and the ``claimed`` person (a person id) always."""
        self._sync()
        if not len(self._index):
            return [], [], None, None
        probe = scoring.stats(embedding)
        # an index ordered for the gallery's normalised scores does not serve a call's plain distances
        penalised = self._ann is not None and self._ann.penalty is not None and scoring is not self.scoring
        if self._search == "exact" or penalised:  # every person's score, from precomputed norms
            people = self._person_stats if scoring is self.scoring else None
            ranking = scoring.score(self._index.person_distances(embedding), probe, people)
            k = min(top_k, len(ranking))
            rows = np.argpartition(ranking, k - 1)[:k] if k > 0 else np.zeros(0, int)
        else:
            rows = self._index.rows_of(np.asarray(self._searcher().candidates(embedding, top_k), np.int64))
        if claimed is not None:
            mine = self._index.row_of(claimed)
            rows = rows if mine in rows else np.r_[rows, mine]
        # the people found are scored again on their exact distances: both searches report the same
        stats = self._stats_of(rows) if scoring is self.scoring else None
        distances = self._index.distances_of(embedding, rows)  # exact, each difference taken
        scores = scoring.score(distances, probe, stats)
        top = self._index.nearest_of(top_k, rows, scores, distances)
        by_row = dict(zip(rows.tolist(), zip(distances.tolist(), scores.tolist(), strict=True), strict=True))

        def measure(person: int) -> tuple[float, float]:
            return by_row[self._index.row_of(person)]

        candidates = [Candidate(n, round(d, 6), round(score, 6)) for _, n, d, score in top]
        return candidates, [person for person, _, _, _ in top], measure, probe

    def _stats_of(self, rows: np.ndarray) -> CohortStats | None:
        """The cohort statistics of the people at ``rows`` (None without normalisation)."""
        stats = self._person_stats
        if stats is None:
            return None
        if isinstance(stats, _LazyStats):
            return stats.rows(rows)
        return CohortStats(stats.mean[rows], stats.std[rows])

    def _distance_limit(self, point: OperatingPoint, scoring: Scoring, probe: CohortStats | None, person: int) -> float:
        """The distance threshold that ``point`` means for this probe and person (an id)."""
        if scoring.norm is None or probe is None or self._person_stats is None:
            return point.threshold
        row = self._index.row_of(person)
        stats = self._stats_of(np.array([row]))
        return scoring.distance_limit(point.threshold, probe, stats)

    def search(self, embedding: np.ndarray, top_k: int = 5) -> list[Candidate]:
        """The ``top_k`` best-scoring people for an embedding, best first, with their fused distances."""
        return self._rank(embedding, self.scoring, top_k)[0]

    def _probe(self, img: Probe, multi_face: MultiFacePolicy) -> list[Face]:
        """The probe's faces; several frames of one face are fused into one embedding."""
        if isinstance(img, (list, tuple)):
            if not img:
                raise GalleryError("a probe needs at least one frame")
            faces = [self._probe(frame, DEFAULT_MULTI_FACE)[0] for frame in img]
            if len(faces) == 1:
                return faces
            fused = mean_embedding(np.stack([f.embedding for f in faces]))
            return [replace(faces[0], embedding=fused.astype(np.float32))]
        faces = represent(img, self._embedder, self.detector, multi_face, tta=self.tta, label="the probe")
        if self.quality is not None and multi_face != "all":
            self.quality.check(faces[0])
        return faces

    def identify(self, img: Probe, top_k: int = 5, threshold: float | None = None) -> IdentifyResult:
        """Who is the main face in ``img``? Open set: "unknown" is an answer.

        ``img`` may be several frames of one face (a list), fused into one probe. A
        photo without a face raises :class:`~facegate.errors.NoFaceError`; a face
        the quality gate refuses raises :class:`~facegate.errors.PoorQualityError`.
        """
        start = time.perf_counter()
        face = self._probe(img, DEFAULT_MULTI_FACE)[0]
        return self.identify_embedding(face.embedding, top_k, threshold, face.facial_area.to_dict(), start)

    def identify_all(self, img: ImageInput, top_k: int = 5, threshold: float | None = None) -> list[IdentifyResult]:
        """Identify every face in ``img``, the main one first."""
        start = time.perf_counter()
        faces = self._probe(img, "all")
        return [self.identify_embedding(f.embedding, top_k, threshold, f.facial_area.to_dict(), start) for f in faces]

    def identify_embedding(
        self,
        embedding: np.ndarray,
        top_k: int = 5,
        threshold: float | None = None,
        facial_area: dict[str, Any] | None = None,
        start: float | None = None,
    ) -> IdentifyResult:
        """Identify a precomputed embedding of this gallery's model (see :meth:`identify`)."""
        start = time.perf_counter() if start is None else start
        scoring = self._call_scoring(threshold)
        candidates, people, _, probe = self._rank(embedding, scoring, top_k)  # brings the index up to date
        if threshold is not None:
            point = identification_point(scoring, self._index.counts, threshold)
        else:
            point = self._identification_point()
        best = candidates[0] if candidates else None
        known = best is not None and best.score <= point.threshold
        limit = self._distance_limit(point, scoring, probe, people[0]) if best is not None else point.threshold
        estimated = point.rate_at(best.score) if best is not None else None
        return IdentifyResult(
            identity=best.name if known else None,
            distance=best.distance if best is not None else None,
            threshold=round(limit, 6),
            candidates=candidates,
            model=self.model_name,
            detector_backend=self.detector_backend,
            similarity_metric=self.metric_name,
            facial_area=facial_area,
            engine=self.settings.engine,
            tta=self.settings.tta,
            time=round(time.perf_counter() - start, 4),
            target_fpir=point.target,
            estimated_fpir=None if estimated is None else float(f"{estimated:.3g}"),
            enrolled_people=len(self._index.people),
            threshold_source=point.source,
        )

    def verify_identity(
        self,
        img: Probe,
        name: str,
        threshold: float | None = None,
        require_nearest: bool = True,
    ) -> VerifyResult:
        """The door check: is the face in ``img`` the enrolled person ``name``?

        The probe is scored against ``name``'s fused templates and accepted when the
        score is within the operating point for ``name`` (the target FMR, counting
        how many photos ``name`` was enrolled with). With ``require_nearest`` (the
        default) the door also stays shut when another enrolled person scores better
        than ``name``: a resident claiming to be a colleague they resemble is refused
        even when the resemblance is within the threshold. ``img`` may be several
        frames of one face (a list), fused into one probe.
        """
        start = time.perf_counter()
        self._sync()
        name = check_name(name)
        self._store.person_id(name)  # raises PersonNotFoundError before any work
        face = self._probe(img, DEFAULT_MULTI_FACE)[0]
        return self.verify_embedding(
            face.embedding, name, threshold, require_nearest, {"img1": face.facial_area.to_dict()}, start
        )

    def verify_embedding(
        self,
        embedding: np.ndarray,
        name: str,
        threshold: float | None = None,
        require_nearest: bool = True,
        facial_areas: dict[str, Any] | None = None,
        start: float | None = None,
    ) -> VerifyResult:
        """The door check for a precomputed embedding of this gallery's model (see :meth:`verify_identity`)."""
        start = time.perf_counter() if start is None else start
        name = check_name(name)
        scoring = self._call_scoring(threshold)
        person = self._store.person_id(name)
        # _rank brings the index up to date
        candidates, _, measure, probe = self._rank(embedding, scoring, 1, claimed=person)
        point = self._door_point(person) if threshold is None else verification_point(scoring, threshold)
        distance, score = measure(person)
        verified = score <= point.threshold
        if verified and require_nearest:
            nearest = candidates[0]
            verified = nearest.name == name or nearest.score >= round(score, 6)
        return VerifyResult(
            verified=bool(verified),
            distance=round(distance, 6),
            threshold=round(self._distance_limit(point, scoring, probe, person), 6),
            model=self.model_name,
            detector_backend=self.detector_backend,
            similarity_metric=self.metric_name,
            facial_areas=facial_areas or {},
            engine=self.settings.engine,
            tta=self.settings.tta,
            time=round(time.perf_counter() - start, 4),
            **decision_rates(point, score),
            identity=name,
        )


class _ScorePenalty:
    """The penalty (:class:`~facegate.gallery.ann.Penalty`) that orders a gallery's index by its
    normalised scores: each owner's, from the gallery's cohort statistics of its people as they
    are now (:meth:`~facegate.decisions.scoring.Scoring.index_penalty`)."""

    def __init__(self, gallery: Gallery) -> None:
        self._gallery = gallery
        # "1": the version of AsNorm.index_penalty's formula (another must change it: saved indexes rebuild)
        self.name = "asnorm penalty 1, cohort " + " ".join(str(int(x)) for x in _stats_key(gallery.scoring))

    def __call__(self, owners: np.ndarray) -> np.ndarray:
        g = self._gallery
        rows = g._index.rows_of(owners)
        if len(rows) != len(owners):
            raise KeyError("a template's owner is not in the gallery's index")
        return g.scoring.index_penalty(g._person_stats.rows(rows))


class _LazyStats:
    """Cohort statistics of a large gallery's people, computed when a person is first a
    candidate (all of them at once would take minutes at a million people)."""

    def __init__(self, scoring: Scoring, means: np.ndarray) -> None:
        self.scoring = scoring
        self.means = means
        self.mean = np.full(len(means), np.nan)
        self.std = np.full(len(means), np.nan)
        #: how many people's statistics this object computed (not restored or moved)
        self.computed = 0

    def rows(self, rows: np.ndarray) -> CohortStats | None:
        if self.scoring.norm is None:
            return None
        rows = np.asarray(rows, int)
        todo = rows[np.isnan(self.mean[rows])]
        if len(todo):
            todo = np.unique(todo)
            fresh = self.scoring.stats(self.means[todo])
            self.mean[todo], self.std[todo] = fresh.mean, fresh.std
            self.computed += len(todo)
        return CohortStats(self.mean[rows], self.std[rows])

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "std": self.std}

    def restore(self, kept: dict[str, np.ndarray], people: np.ndarray, changed: np.ndarray) -> None:
        """Fill from statistics kept with the graph (``people``: this gallery's, sorted)."""
        self.mean[:], self.std[:] = self.moved(kept["people"], people, self.means, changed, kept).arrays().values()

    def moved(
        self,
        old: np.ndarray,
        new: np.ndarray,
        means: np.ndarray,
        changed: Sequence[int] | np.ndarray = (),
        values: dict[str, np.ndarray] | None = None,
    ) -> _LazyStats:
        """The same statistics for a gallery whose people went from ``old`` to ``new``
        (sorted person ids); ``changed`` people (new templates) are computed again."""
        out = _LazyStats(self.scoring, means)
        mean, std = (values["mean"], values["std"]) if values is not None else (self.mean, self.std)
        if len(old) and len(new):
            at = np.minimum(np.searchsorted(old, new), len(old) - 1)
            kept = (old[at] == new) & ~np.isin(new, np.asarray(changed, np.int64))
            out.mean[kept], out.std[kept] = mean[at[kept]], std[at[kept]]
        return out


def _stats_key(scoring: Scoring) -> np.ndarray:
    """What cohort statistics kept with a graph were computed with (cohort, top k)."""
    norm = scoring.norm
    assert norm is not None
    return np.array([zlib.crc32(norm.cohort.tobytes()), norm.top_k, len(norm.cohort)], np.int64)


def _change(
    event: Event | None, kind: str, name: str, faces: Sequence[tuple[Face, str]] = (), detail: dict | None = None
) -> Event:
    """The audit event of a change to ``name``: who asked (``event``, else this process's default) and what was done."""
    if faces:
        detail = {"templates": len(faces), **(detail or {})}
    return (event or default_source()).filled(
        kind=kind,
        outcome="done",
        name=name,
        photo_sha256=",".join(sha for _, sha in faces) or None,
        detail={**(event.detail if event else {}), **(detail or {})},
    )


def _enrolled(name: str, ids: list[int], faces: list[tuple[Face, str]]) -> EnrollResult:
    return EnrollResult(name, ids, [f.facial_area.to_dict() for f, _ in faces], [f.faces_in_image for f, _ in faces])


def check_name(name: str) -> str:
    """A person's name in Unicode NFC, refused when empty, padded or holding control characters."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidNameError("a person's name must be a non-empty string")
    name = unicodedata.normalize("NFC", name)
    if name != name.strip():
        raise InvalidNameError(f"a person's name must not start or end with spaces: {name!r}")
    bad = sorted({repr(c) for c in name if unicodedata.category(c).startswith("C")})
    if bad:
        raise InvalidNameError(f"a person's name must not hold control characters ({', '.join(bad)}): {name!r}")
    return name


#: inputs that are one image, not a list of photos
ONE_IMAGE = (str, bytes, bytearray, memoryview, PathLike, np.ndarray, Image.Image)


__all__ = ["Gallery"]
