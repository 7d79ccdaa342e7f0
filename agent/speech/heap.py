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

Measured with ``switchboard bench --sandbox`` (README, "Capacity and sizing").
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
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
