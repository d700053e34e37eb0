"""Huge pages for a graph's memory (facegate.gallery.hugepages): a block made inside
``huge_pages()`` is backed by 2 MiB pages, a block already written is remapped at once
with ``collapse``, nothing else is touched, and a kernel without THP changes nothing."""

from __future__ import annotations

import ctypes
import errno
import mmap
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from facegate.gallery import hugepages
from facegate.gallery.hugepages import HUGE_PAGE, MIN_BYTES, Advice, advise, anonymous_mappings, huge_pages, new_ranges

MiB = 1 << 20
needs_thp = pytest.mark.skipif(not hugepages.offered(), reason="this kernel gives no transparent huge pages")


def _block(size: int) -> tuple[mmap.mmap, int]:
    """A private anonymous mapping of ``size`` bytes (as malloc makes for a large block), and its address."""
    block = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return block, ctypes.addressof(ctypes.c_char.from_buffer(block))


def _huge_bytes(address: int) -> int:
    """AnonHugePages of the mapping holding ``address`` (/proc/self/smaps), in bytes."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
        if head:
            inside = int(head[1], 16) <= address < int(head[2], 16)
        elif inside and line.startswith("AnonHugePages:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no mapping holds the address")


def _aligned_inside(address: int, size: int) -> int:
    """How many bytes of whole 2 MiB pages lie inside [address, address + size)."""
    first = -(-address // HUGE_PAGE) * HUGE_PAGE
    return (address + size) // HUGE_PAGE * HUGE_PAGE - first


def _write(block: mmap.mmap) -> None:
    np.frombuffer(block, np.uint8)[::4096] = 1  # every 4 KiB page touched


def test_a_mapping_made_inside_the_block_is_listed_and_advised():
    with huge_pages() as advice:
        block, address = _block(40 * MiB)
    assert any(start <= address < end for start, end in anonymous_mappings())
    if hugepages.offered():
        assert advice == Advice(advised=_aligned_inside(address, 40 * MiB), collapsed=0)
    else:
        assert advice == Advice()
    block.close()


@needs_thp
def test_a_new_block_is_backed_by_huge_pages_when_written():
    with huge_pages():
        block, address = _block(40 * MiB)
    _write(block)
    assert _huge_bytes(address) == _aligned_inside(address, 40 * MiB)
    block.close()


@needs_thp
def test_collapse_remaps_a_block_already_written():
    block, address = _block(40 * MiB)
    _write(block)
    assert _huge_bytes(address) == 0  # not asked for: 4 KiB pages
    done = advise({(address, address + 40 * MiB)}, collapse=True)
    assert done == Advice(advised=_aligned_inside(address, 40 * MiB), collapsed=_aligned_inside(address, 40 * MiB))
    assert _huge_bytes(address) == done.collapsed
    assert np.frombuffer(block, np.uint8)[::4096].min() == 1  # the contents are kept
    block.close()


def test_mappings_made_before_the_block_or_small_ones_are_left_alone():
    before, address = _block(40 * MiB)
    with huge_pages() as advice:
        small, _ = _block(4 * MiB)  # below MIN_BYTES: may share the heap in a real allocator
    _write(before)
    assert advice == Advice()
    assert _huge_bytes(address) == 0
    before.close()
    small.close()


def test_a_kernel_without_transparent_huge_pages_changes_nothing(tmp_path, monkeypatch):
    setting = tmp_path / "enabled"
    setting.write_text("always madvise [never]\n")
    monkeypatch.setattr(hugepages, "_SETTING", setting)
    assert not hugepages.offered()
    with huge_pages(collapse=True) as advice:
        block, address = _block(40 * MiB)
        _write(block)
    assert advice == Advice()
    assert _huge_bytes(address) == 0
    block.close()


def test_no_proc_folder_means_no_mappings(monkeypatch):
    def unreadable(self, *args, **kwargs):
        raise FileNotFoundError(self)

    monkeypatch.setattr(Path, "read_text", unreadable)
    assert anonymous_mappings() == set()
    assert not hugepages.offered()


@needs_thp
def test_a_new_block_merged_with_an_old_mapping_is_advised_alone():
    old, address = _block(40 * MiB)
    with huge_pages() as advice:
        new, new_address = _block(40 * MiB)  # the kernel may place it next to ``old`` and merge the two
    assert advice == Advice(advised=_aligned_inside(new_address, 40 * MiB), collapsed=0)
    _write(old)
    _write(new)
    assert _huge_bytes(address) == 0
    assert _huge_bytes(new_address) == advice.advised
    old.close()
    new.close()


def test_new_ranges_are_what_grew_or_appeared():
    M = MIN_BYTES
    before = {(0, 4 * M), (10 * M, 11 * M)}
    after = {(0, 6 * M), (10 * M, 11 * M), (20 * M, 20 * M + M // 2), (30 * M, 32 * M)}
    assert new_ranges(before, after) == {(4 * M, 6 * M), (30 * M, 32 * M)}


_ranges = st.lists(st.tuples(st.integers(0, 200), st.integers(1, 60)), max_size=6).map(
    lambda xs: {(a * MIN_BYTES // 4, (a + n) * MIN_BYTES // 4) for a, n in xs}
)


@given(_ranges, _ranges)
def test_new_ranges_lie_inside_the_new_mappings_and_outside_the_old(before, after):
    found = new_ranges(before, after)
    for start, end in found:
        assert end - start >= MIN_BYTES
        assert any(a <= start and end <= b for a, b in after)
        assert not any(a < end and start < b for a, b in before)
    # every address mapped only afterwards is in a found range, unless its piece was too small
    for a, b in after:
        for x in range(a, b, MIN_BYTES // 4):
            if not any(c <= x < d for c, d in before) and not any(c <= x < d for c, d in found):
                piece_start = max([d for c, d in before if d <= x] + [a])
                piece_end = min([c for c, d in before if c > x] + [b])
                assert piece_end - piece_start < MIN_BYTES


def test_a_collapse_is_tried_again_only_while_the_kernel_says_eagain():
    def kernel(answers):
        calls = []

        def madvise(page, size, advice):
            calls.append(advice)
            code = answers[len(calls) - 1]
            ctypes.set_errno(code)
            return 0 if code == 0 else -1

        return madvise, calls

    madvise, calls = kernel([errno.EAGAIN, errno.EAGAIN, 0])
    assert hugepages._collapse(madvise, 0) is True and len(calls) == 3
    madvise, calls = kernel([errno.EINVAL])
    assert hugepages._collapse(madvise, 0) is False and len(calls) == 1
    madvise, calls = kernel([errno.EAGAIN] * hugepages.COLLAPSE_TRIES)
    assert hugepages._collapse(madvise, 0) is False and len(calls) == hugepages.COLLAPSE_TRIES
