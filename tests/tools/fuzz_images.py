"""Mutated real photos, in every accepted format, through represent and Gallery.enroll.

Run apart from the test session (``python tests/tools/fuzz_images.py PHOTO EXAMPLES``)
so that an abort in native code is seen as this process dying, not as pytest dying.
Prints one summary line: ``inputs N typed T results R``; exits 1 on any untyped error.
"""

from __future__ import annotations

import io
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import facegate
from facegate.errors import FacegateError
from facegate.images import FORMATS

counts = {"inputs": 0, "typed": 0, "results": 0}


def encoded(photo: str, fmt: str) -> bytes:
    image = Image.open(photo).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


mutations = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), min_size=1, max_size=8)),
    st.tuples(st.just("insert"), st.floats(0.0, 1.0), st.binary(min_size=1, max_size=64)),
)


def mutate(data: bytes, mutation) -> bytes:
    kind = mutation[0]
    if kind == "truncate":
        return data[: int(mutation[1] * len(data))]
    if kind == "flip":
        out = bytearray(data)
        for where, value in mutation[1]:
            out[min(int(where * len(out)), len(out) - 1)] = value
        return bytes(out)
    at = int(mutation[1] * len(data))
    return data[:at] + mutation[2] + data[at:]


def run(photo: str, examples: int) -> None:
    gallery = facegate.Gallery(":memory:", quality=None)
    for fmt in FORMATS:
        fuzz_format(gallery, encoded(photo, fmt), examples)


def fuzz_format(gallery: facegate.Gallery, original: bytes, examples: int) -> None:
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(mutations, st.booleans())
    def one(mutation, enroll):
        data = mutate(original, mutation)
        counts["inputs"] += 1
        try:
            if enroll:
                gallery.enroll(f"p{counts['inputs']}", [data])
            else:
                facegate.represent(data)
            counts["results"] += 1
        except FacegateError:
            counts["typed"] += 1

    one()


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]))
    print(f"inputs {counts['inputs']} typed {counts['typed']} results {counts['results']}")
