"""The C heap gives large freed blocks back (glibc), in a process of its own each time."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")

# 64 blocks of 1 MiB, each followed by a smaller one that stays: the heap cannot shrink from
# its top, so freed large blocks stay resident unless they had pages of their own.
PROBE = r"""
import ctypes, sys
from agent.speech.heap import map_large_blocks, release_free_heap
if sys.argv[1] == "map":
    assert map_large_blocks()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
MIB = 1 << 20
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
libc.free(libc.malloc(2 * MIB))  # glibc's default: freeing it raises the threshold
base = rss()
blocks = []
for _ in range(64):
    big = libc.malloc(MIB)
    ctypes.memset(big, 1, MIB)
    blocks.append((big, libc.malloc(192 * 1024)))  # below both thresholds: in the heap
for big, _ in blocks:
    libc.free(big)
kept = rss() - base
release_free_heap()
print(kept // MIB, (rss() - base) // MIB)
"""


def _retained(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    return int(out[0]), int(out[1])


def test_freed_large_blocks_are_given_back_at_once() -> None:
    kept, _ = _retained("map")
    assert kept < 8, kept


def test_without_the_setting_they_stay_until_the_heap_is_trimmed() -> None:
    kept, trimmed = _retained("default")
    assert kept > 48, kept  # what the daemon's transcriber had left resident
    assert trimmed < 8, trimmed  # release_free_heap gives them back


TRANSCRIBE = r"""
import asyncio, sys
import numpy as np
from agent.media.audio import AudioChunk
from agent.speech.heap import map_large_blocks
from agent.speech.moonshine import MoonshineTranscriber
assert map_large_blocks()  # as the daemon does before loading its models
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20
stt = MoonshineTranscriber(sys.argv[1], threads=1)
rng = np.random.default_rng(1)
def noise(seconds, level):
    return AudioChunk((rng.standard_normal(8000 * seconds) * level).astype(np.int16), 8000)
async def main():
    await stt.transcribe(noise(1, 300))
    base = rss()
    for seconds in (8, 12, 2):
        await stt.transcribe(noise(seconds, 3000))
    print(rss() - base)
asyncio.run(main())
"""


def test_a_long_turn_leaves_no_room_behind_in_the_transcriber(model_store) -> None:
    """With ONNX Runtime's arena (and glibc's moving threshold) the 12 s turn's tensors
    stayed resident for good: +42 MB on the real model, against +5 MB now."""
    path = model_store.path("moonshine-base-en", "stt")
    grown = subprocess.run([sys.executable, "-c", TRANSCRIBE, str(path)], capture_output=True,
                           text=True, check=True, timeout=120).stdout.split()[-1]
    assert int(grown) < 15, grown


FILE_PAGES = r"""
import mmap, sys
from pathlib import Path
from agent.speech.heap import release_file_pages
path = Path(sys.argv[1])
def resident():  # kB of this file's pages mapped into the process
    kb, ours = 0, False
    for line in open("/proc/self/smaps"):
        if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
            ours = line.rstrip().endswith(str(path))
        elif ours and line.startswith("Rss:"):
            kb += int(line.split()[1])
    return kb
with open(path, "rb") as f:
    view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
total = sum(view[i] for i in range(0, len(view), 4096))
before = resident()
released = release_file_pages(path)
after = resident()
again = sum(view[i] for i in range(0, len(view), 4096))  # still readable, same bytes
print(before, after, released, total == again, release_file_pages(path.with_suffix(".x")))
"""


def test_a_model_files_pages_are_let_go_and_read_again_on_use(tmp_path) -> None:
    """What the language model's loader read from its mapped file stops counting as the
    daemon's memory; a page read afterwards is the file's, unchanged."""
    path = tmp_path / "weights.gguf"
    path.write_bytes(bytes(range(256)) * 4096 * 4)  # 4 MiB
    out = subprocess.run([sys.executable, "-c", FILE_PAGES, str(path)], capture_output=True,
                         text=True, check=True, timeout=60).stdout.split()
    before, after, released = int(out[0]), int(out[1]), int(out[2])
    assert before >= 4000 and after < 64, (before, after)
    assert released == 4 << 20
    assert out[3:] == ["True", "0"]
