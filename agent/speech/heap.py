"""The C heap: the daemon's resident memory follows what is alive.

Two settings of glibc's allocator (elsewhere both do nothing):

- ``map_large_blocks``: a block of 256 KiB or more gets pages of its own, given back to the
  system when it is freed. By default glibc raises that threshold (up to 32 MiB) each time
  such a block is freed, so later large blocks come from the heap, and their pages stay
  resident after use wherever the heap cannot shrink from its top. A transcriber's
  tensors (hundreds of kilobytes to tens of megabytes a turn) then stayed at the high-water
  mark of the longest turn.
- ``release_free_heap``: give the free pages inside the heaps back now (after loading
  models, whose parsed files are freed again).

And one for a model file mapped into memory: ``release_file_pages`` lets go of the pages
read while loading. llama.cpp maps the GGUF file and, for the layouts it rearranges (IQ4_NL,
Q4_0), copies most weights into buffers of its own at load; the file's pages it read stay
resident though they are never read again. Pages still in use (the embeddings, the layers
it did not rearrange) come back from the page cache on their first read. SmolLM2-135M as
IQ4_NL, loaded and 20 tokens decoded: 223 MB resident, 171 MB with the pages released
(the package's Q4_1: 172 MB).

Measured with ``switchboard bench --sandbox`` (README, "Capacity and sizing").
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from pathlib import Path

M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
MADV_DONTNEED = 4  # madvise advice (sys/mman.h)
LARGE_BLOCK = 256 * 1024


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def map_large_blocks(threshold: int = LARGE_BLOCK) -> bool:
    """Serve blocks of ``threshold`` bytes or more from pages of their own (fixed: glibc no
    longer moves the threshold). True when the allocator took the setting."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    return bool(mallopt is not None and mallopt(M_MMAP_THRESHOLD, threshold) == 1)


def release_free_heap() -> None:
    """Give the C heaps' free pages back to the system."""
    libc = _libc()
    with contextlib.suppress(AttributeError):
        libc.malloc_trim(0)  # type: ignore[union-attr]


def release_file_pages(path: Path, maps: Path = Path("/proc/self/maps")) -> int:
    """Unmap the resident pages of every mapping of ``path`` in this process (the mappings
    stay; a later read maps a page again from the page cache). The bytes released from view,
    0 where nothing maps it or the system has no ``madvise``."""
    libc = _libc()
    madvise = getattr(libc, "madvise", None)
    if madvise is None:
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    target = os.path.realpath(path)
    released = 0
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or fields[5] != target:
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if madvise(start, end - start, MADV_DONTNEED) == 0:
            released += end - start
    return released
