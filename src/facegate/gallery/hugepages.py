"""Huge pages for the large blocks of memory a graph library allocates (Linux).

A graph search over a million templates reads a few thousand nodes scattered over
about 800 MB. With the default 4 KiB pages nearly every read also misses the TLB
(in a virtual machine the page walk is nested). Backing the graph with 2 MiB pages
(transparent huge pages) made the graph's search about 1.2 times faster at 1M templates
and 1.1 times at 100k on a 2-core virtual machine (``bench/gallery_scale.py
--compare-pages``: the same graph on both kinds of pages, probes alternating).

Kernels in THP ``madvise`` mode (Debian's default) give huge pages only to memory a
program asks for. hnswlib allocates its graph with ``malloc`` and does not ask. So
:func:`huge_pages` notes the process's anonymous mappings before a library call, and
afterwards asks for huge pages for the large ranges that call mapped:

- ``MADV_HUGEPAGE``, so pages touched later come as huge pages;
- with ``collapse``, also ``MADV_COLLAPSE`` (Linux 6.1+), which remaps pages already
  written (a graph just read from its file) as huge pages at once.

It is best effort: no ``/proc``, a kernel without THP, or THP ``never`` leave
everything as it was, and nothing is raised. numpy already asks for huge pages for
its own large arrays.
"""

from __future__ import annotations

import ctypes
import errno
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: ranges smaller than this are left alone. glibc serves a large allocation with a mapping of
#: its own, or by growing the heap: both are seen. It may also reuse heap space freed
#: earlier (up to 64 MiB is kept): that block is not seen, and stays on 4 KiB pages
MIN_BYTES = 16 << 20
HUGE_PAGE = 2 << 20
MADV_HUGEPAGE, MADV_COLLAPSE = 14, 25
#: a page's collapse is tried this many times while the kernel says EAGAIN (a transient lock or
#: writeback, in its own words): one page of a 34 MiB graph once stayed small in a test run
COLLAPSE_TRIES = 3
_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def offered() -> bool:
    """Whether the kernel gives huge pages to memory that asks for them (THP ``always`` or ``madvise``)."""
    try:
        return sys.platform == "linux" and "[never]" not in _SETTING.read_text()
    except OSError:
        return False


def anonymous_mappings(min_bytes: int = MIN_BYTES) -> set[tuple[int, int]]:
    """(start, end) of this process's anonymous mappings of at least ``min_bytes``."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return set()
    out = set()
    for line in lines:
        fields = line.split()
        if len(fields) == 5 or fields[5:] == ["[heap]"]:  # anonymous memory (no path), or the heap as it grows
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if end - start >= min_bytes:
                out.add((start, end))
    return out


@dataclass
class Advice:
    """What :func:`huge_pages` asked for: bytes advised, and bytes collapsed at once."""

    advised: int = 0
    collapsed: int = 0


def advise(mappings: set[tuple[int, int]], collapse: bool) -> Advice:
    """Ask for huge pages for ``mappings`` (their whole 2 MiB pages); see the module's text."""
    done = Advice()
    if not mappings or not offered():
        return done
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return done
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    for start, end in sorted(mappings):
        first = -(-start // HUGE_PAGE) * HUGE_PAGE
        last = end // HUGE_PAGE * HUGE_PAGE
        if last <= first or madvise(first, last - first, MADV_HUGEPAGE) != 0:
            continue
        done.advised += last - first
        if collapse:  # page by page: one with nothing written yet cannot be collapsed, and needs not be
            for page in range(first, last, HUGE_PAGE):
                if _collapse(madvise, page):
                    done.collapsed += HUGE_PAGE
    return done


def _collapse(madvise, page: int) -> bool:
    """``MADV_COLLAPSE`` of one huge page, tried again while the failure is transient (EAGAIN)."""
    for _ in range(COLLAPSE_TRIES):
        if madvise(page, HUGE_PAGE, MADV_COLLAPSE) == 0:
            return True
        if ctypes.get_errno() != errno.EAGAIN:
            return False
    return False


def new_ranges(before: set[tuple[int, int]], after: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The address ranges of ``after`` that no range of ``before`` covers, of at least
    :data:`MIN_BYTES`. The kernel merges a new mapping with an adjacent one of the same
    kind, so a new block can show up as an old mapping grown: only the growth is new."""
    out = set()
    for start, end in after:
        pieces = [(start, end)]
        for old_start, old_end in before:
            if old_start < end and old_end > start:
                pieces = [
                    part
                    for a, b in pieces
                    for part in ((a, min(b, old_start)), (max(a, old_end), b))
                    if part[1] > part[0]
                ]
        out.update(p for p in pieces if p[1] - p[0] >= MIN_BYTES)
    return out


@contextmanager
def huge_pages(collapse: bool = False) -> Iterator[Advice]:
    """Ask for huge pages for the large anonymous memory mapped inside the block;
    ``collapse``: also remap what the block already wrote (see the module's text)."""
    before = anonymous_mappings(min_bytes=0)
    advice = Advice()
    yield advice
    done = advise(new_ranges(before, anonymous_mappings(min_bytes=0)), collapse)
    advice.advised, advice.collapsed = done.advised, done.collapsed


__all__ = ["Advice", "advise", "anonymous_mappings", "huge_pages", "new_ranges", "offered"]
