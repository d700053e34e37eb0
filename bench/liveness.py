"""Liveness by challenge: acceptance of genuine actions and of photo attacks, on every subject.

Genuine sequences are built from real photos (:mod:`facegate.datasets.liveness`): a blink
from each of Yale's 15 subjects (normal, sleepy, normal), a turn from each of ORL's 40
(photos ordered by estimated yaw, out and back). Attacks are made from one photo of each
subject (repeated, moved rigidly, turned, tilted, swapped for a second photo) and judged
under every challenge; impostors are another subject's genuine sequence claimed as this
one. People are enrolled in one gallery per data set (default model and detector) from
photos that are not in their sequence. A sequence is accepted when the door would open:
live and verified.

    .venv/bin/python bench/liveness.py [--subjects tune|test|all] [--json]

``tune`` is the half the constants of :mod:`facegate.live.liveness` were chosen on (Yale
01-07, ORL s1-s20), ``test`` the other half. The reasons an attack was refused are the first
check it failed: ``rigid_motion`` a turn whose nose did not move against the eyes and mouth,
or whose face lost height (a picture turned or tilted); ``wink`` a "blink" on one side of the
face only (a wink photo swapped in); ``face_moved`` eyes that narrowed with the rest of the face
(a picture tilted); ``jump`` a track that jumped between frames (a photo swapped); ``too_small``
a face too small to judge a blink on (ORL's).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

from facegate.datasets.liveness import ATTACKS, cases, orl_subjects, yale_subjects
from facegate.gallery import Gallery
from facegate.live.liveness import CHALLENGES, LivenessCheck

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
#: the subjects the constants were chosen on
TUNE = {"yale": range(1, 8), "orl": range(1, 21)}


def subject_number(name: str) -> int:
    return int(name[-2:])


def build(which: str, cache: dict):
    """The subjects, one gallery per data set with them enrolled, and a check for each."""
    yale_gallery, orl_gallery = Gallery(":memory:"), Gallery(":memory:")
    checks = {"yale": LivenessCheck(yale_gallery, cache), "orl": LivenessCheck(orl_gallery, cache)}

    def yaw_of(image):
        observation, _ = checks["orl"].observe(image)
        if not observation.faces:
            return None
        from facegate.live.head_pose import yaw_degrees

        return yaw_degrees(observation.faces[0].points, observation.size)

    subjects = yale_subjects(DATA / "yale") + orl_subjects(DATA / "orl", yaw_of)
    if which != "all":
        keep = (lambda s: subject_number(s.name) in TUNE[s.dataset]) if which == "tune" else None
        keep = keep or (lambda s: subject_number(s.name) not in TUNE[s.dataset])
        subjects = [s for s in subjects if keep(s)]
    for subject in subjects:
        gallery = yale_gallery if subject.dataset == "yale" else orl_gallery
        gallery.enroll(subject.name, subject.enrol)
    return subjects, checks


def run(which: str = "all", verbose: bool = False) -> dict:
    cache: dict = {}
    start = time.perf_counter()
    subjects, checks = build(which, cache)
    dataset = {s.name: s.dataset for s in subjects}
    accepted: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    reasons: dict[str, Counter] = defaultdict(Counter)
    rows = []
    for case in cases(subjects, CHALLENGES.names()):
        result = checks[dataset[case.claim]].judge(case.frames, case.claim, case.challenge)
        kind = f"genuine {case.challenge}" if case.genuine else case.kind
        cell = accepted[(kind, case.challenge)]
        cell[0] += int(result.accepted)
        cell[1] += 1
        reasons[kind][result.reason] += 1
        rows.append({"kind": case.kind, "subject": case.subject, "claim": case.claim, **result.to_dict()})
        if verbose:
            print(case.kind, case.subject, case.challenge, result.reason, result.message, result.action)
    return {
        "subjects": which,
        "accepted": {f"{k}|{c}": v for (k, c), v in accepted.items()},
        "reasons": {k: dict(v) for k, v in reasons.items()},
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }


def table(report: dict) -> str:
    challenges = CHALLENGES.names()
    cells = {tuple(k.split("|")): v for k, v in report["accepted"].items()}
    kinds = [f"genuine {c}" for c in challenges] + list(ATTACKS)
    lines = [f"{'sequences':<20}" + "".join(f"{c:>14}" for c in challenges) + f"{'all':>14}   reasons refused"]
    for kind in kinds:
        row = [cells.get((kind, c)) for c in challenges]
        if not any(row):
            continue
        total = [sum(r[0] for r in row if r), sum(r[1] for r in row if r)]
        text = "".join(f"{f'{r[0]}/{r[1]}' if r else '-':>14}" for r in row) + f"{f'{total[0]}/{total[1]}':>14}"
        why = ", ".join(f"{r} {n}" for r, n in sorted(report["reasons"][kind].items()) if r != "accepted")
        lines.append(f"{kind:<20}{text}   {why}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", choices=("tune", "test", "all"), default="all")
    parser.add_argument("--json", action="store_true", help="Print every sequence's result as JSON.")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    report = run(args.subjects, args.verbose)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"Liveness acceptance (accepted / sequences; subjects: {args.subjects}; {report['seconds']} s)")
    print("genuine: should be accepted; attacks: should not (each attack judged under every challenge)")
    print(table(report))


if __name__ == "__main__":
    main()
