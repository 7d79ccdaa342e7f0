"""One call's recording, written while the call goes on.

The media leg hands both sides to :class:`CallRecording` on its tick (two list appends);
every second the aligned stereo block goes to the recording's own thread, which encodes it
(``soundfile``: Ogg/Opus, FLAC or WAV) and flushes it to disk, sealed when a key is given.
The event loop never waits on the encoder or the disk, and a crash loses at most the
encoder's last page and the block in flight (about two seconds).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from agent.recording.mixer import StereoMixer
from agent.recording.sealed import SealedWriter

log = logging.getLogger(__name__)

FORMATS = {  # name: (soundfile format, subtype, file suffix)
    "opus": ("OGG", "OPUS", ".ogg"),
    "flac": ("FLAC", "PCM_16", ".flac"),
    "wav": ("WAV", "PCM_16", ".wav"),
}
SEALED_SUFFIX = ".sealed"
BATCH_SECONDS = 1.0
_STOP = None


@dataclass(frozen=True)
class RecordingSpec:
    """An agent's recording policy, as the daemon runs it."""

    mode: str = "off"  # off, on, or announce (a spoken notice before the greeting)
    notice: str = "This call is recorded."
    format: str = "opus"  # opus (Ogg/Opus), flac or wav
    retention_days: float | None = None  # None: as long as the call's record

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


def recording_name(call_id: str, fmt: str, sealed: bool) -> str:
    """The file name of a call's recording, relative to the recordings directory."""
    return call_id + FORMATS[fmt][2] + (SEALED_SUFFIX if sealed else "")


class CallRecording:
    """Stereo recording of one call: caller left, agent right, as the call goes."""

    def __init__(self, path: Path, rate: int, fmt: str = "opus",
                 key: bytes | None = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown recording format {fmt!r}; expected one of "
                             f"{sorted(FORMATS)}")
        self.path = path
        self.rate = rate
        self.format = fmt
        self.key = key
        self.mixer = StereoMixer(rate)
        self.failed: str | None = None  # the error type that stopped the writer
        self.cpu_seconds = 0.0  # encoder and disk time of the writer thread
        self._batch = int(BATCH_SECONDS * rate)
        self._queue: queue.SimpleQueue[np.ndarray | None] = queue.SimpleQueue()
        self._closed = False
        # A daemon thread: a call that never reached its clean-up cannot hold up the
        # process's exit (what was flushed stays readable).
        self._thread = threading.Thread(target=self._run, name=f"recording-{path.stem}",
                                        daemon=True)
        self._thread.start()

    # -- on the event loop (cheap) ---------------------------------------------------------
    def caller(self, pcm: np.ndarray) -> None:
        """Caller audio the jitter buffer released in this tick."""
        if not self._closed:
            self.mixer.caller(pcm)

    def agent(self, frame: np.ndarray) -> None:
        """The frame just sent toward the caller; a full batch goes to the writer."""
        if self._closed:
            return
        self.mixer.agent(frame)
        if self.mixer.pending >= self._batch:
            self._queue.put(self.mixer.take())

    def close(self) -> None:
        """Hand the rest to the writer, which finishes the file on its own."""
        if not self._closed:
            self._closed = True
            self._queue.put(self.mixer.finish())
            self._queue.put(_STOP)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the writer to finish the file (tests, shutdown)."""
        self._thread.join(timeout)

    @property
    def seconds(self) -> float:
        return self.mixer.samples / self.rate

    # -- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        fmt, subtype, _ = FORMATS[self.format]
        start = time.thread_time()
        stopped = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as raw:
                sink = SealedWriter(raw, self.key) if self.key is not None else raw
                encoder = soundfile.SoundFile(sink, "w", samplerate=self.rate, channels=2,
                                              format=fmt, subtype=subtype)
                try:
                    while (block := self._queue.get()) is not _STOP:
                        if len(block):
                            encoder.write(block)
                        if isinstance(sink, SealedWriter):
                            sink.seal()
                        else:
                            raw.flush()
                    stopped = True
                finally:
                    encoder.close()
                    if isinstance(sink, SealedWriter):
                        sink.close()
        except Exception as exc:  # noqa: BLE001  (the call goes on without its recording)
            self.failed = type(exc).__name__
            log.error("recording %s failed: %s", self.path.name, self.failed)
            while not stopped and self._queue.get() is not _STOP:  # drain what comes
                pass
        finally:
            self.cpu_seconds = time.thread_time() - start
        if self.failed is None:
            log.info("recording %s: %.1f s, %.3f s CPU, %d bytes", self.path.name,
                     self.seconds, self.cpu_seconds, self.path.stat().st_size)
