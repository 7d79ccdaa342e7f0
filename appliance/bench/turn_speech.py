"""Phone turns for the end-of-turn evaluation, generated at run time.

Callers' questions and statements said to the end, and the same kind of sentences cut at a
natural pause (mid phone number, after "and", "my name is", "I'd like to book for"). Each
sentence is spoken whole, with a comma where the caller pauses, by every Piper voice in the
model store (two speaking rates) and by espeak-ng voices; the audio goes through G.711 µ-law
at 8 kHz over a faint line noise, and ends 100 ms into the silence after the speech (what the
agent hands a turn model when it starts work on a turn, 120 ms into the silence).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from agent.media.audio import AudioChunk, read_wav
from agent.media.g711 import ulaw_decode, ulaw_encode
from agent.media.resample import resample
from appliance.models.store import ModelStore

RATE = 8000
TRAILING = 0.1  # s of silence after the speech in the audio judged (as the agent's TurnTaker)
PAUSES = (0.3, 0.5, 0.7, 0.9, 1.1, 1.5)  # s, a caller's pause mid-sentence
ESPEAK_VOICES = ("en-us", "en-us+f3", "en-gb-x-rp+m3", "en-gb-scotland+f2")

COMPLETE = (
    "What time do you close on Saturdays?",
    "Can I book an appointment for next Tuesday?",
    "My name is Sarah Johnson.",
    "I'd like to speak to someone about my bill.",
    "Do you take Blue Cross insurance?",
    "Yes, that works for me.",
    "No, I said Wednesday.",
    "My number is five five five, two one three, four four seven eight.",
    "Where are you located?",
    "I need to cancel my appointment.",
    "Is the pharmacy open on Sunday?",
    "Thank you, that's all I needed.",
    "Can you transfer me to billing?",
    "How much does a cleaning cost?",
    "I'm calling about my prescription refill.",
    "My date of birth is March third, nineteen eighty two.",
    "Could you repeat that, please?",
    "I'd like to book a table for four people at seven.",
    "The address is twelve Oak Street.",
    "Okay, thanks, goodbye.",
)
# (said before the pause, said after it): the caller is cut if the agent answers in the pause
PAUSED = (
    ("My number is five five five", "two one three four."),
    ("My phone number is five five five, two one three", "four four seven eight."),
    ("I'd like to book for", "next Thursday afternoon."),
    ("My name is", "Sarah Johnson."),
    ("I need a refill of my blood pressure medication and", "my inhaler."),
    ("Can I book an appointment for", "Friday morning?"),
    ("I'm calling because", "my card was charged twice."),
    ("The address is twelve", "Oak Street."),
    ("My date of birth is March", "third, nineteen eighty two."),
    ("I wanted to ask about", "your opening hours."),
    ("Do you have anything available on", "Monday?"),
    ("I'd like to speak to", "the manager."),
    ("My insurance is with", "Blue Cross."),
    ("It's for my daughter and", "my son."),
    ("The problem is that", "the heating stopped working."),
    ("So I was wondering if", "you could call me back."),
    ("My account number is four two", "seven nine."),
    ("We need a table for", "six people."),
    ("I live at", "forty five Main Street."),
    ("Yes, and also", "I need a receipt."),
)

Speak = Callable[[str], AudioChunk]


def espeak(voice: str, speed: int = 160) -> Speak:
    """espeak-ng (Debian package ``espeak-ng``) speaking with ``voice``."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install espeak-ng")

    def speak(text: str) -> AudioChunk:
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "say.wav"
            subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", str(wav), text],
                           check=True, capture_output=True)
            return read_wav(wav)
    return speak


def piper(path: Path, length_scale: float) -> Speak:
    """A Piper voice file speaking at ``length_scale`` (1.0 = its own pace)."""
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(str(path))
    config = SynthesisConfig(length_scale=length_scale)
    rate = int(voice.config.sample_rate)

    def speak(text: str) -> AudioChunk:
        pcm = [c.audio_int16_array for c in voice.synthesize(text, syn_config=config)]
        return AudioChunk(np.concatenate(pcm), rate)
    return speak


def voices(store_root: Path) -> list[tuple[str, Speak]]:
    """Every Piper voice in the store at two paces, then the espeak-ng voices."""
    store = ModelStore(store_root)
    out: list[tuple[str, Speak]] = []
    for entry in store.entries().values():
        if entry.role == "tts":
            for scale in (1.0, 1.2):
                out.append((f"piper:{entry.name}@{scale}",
                            piper(store.path(entry.name, "tts"), scale)))
    out += [(f"espeak:{v}", espeak(v)) for v in ESPEAK_VOICES]
    return out


def _frame_db(pcm: np.ndarray, frame: int) -> np.ndarray:
    frames = pcm[:len(pcm) // frame * frame].reshape(-1, frame).astype(np.float64)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1.0)


def trim(pcm: np.ndarray, rate: int) -> np.ndarray:
    """``pcm`` without the silence before its first and after its last voiced 10 ms."""
    frame = rate // 100
    db = _frame_db(pcm, frame)
    voiced = np.flatnonzero(db > db.max() - 40)
    if len(voiced) == 0:
        return pcm[:0]
    return pcm[voiced[0] * frame:(voiced[-1] + 1) * frame]


def pause_start(pcm: np.ndarray, rate: int, near: float) -> float:
    """Start (s) of the silent gap of >= 60 ms in ``pcm`` that begins nearest to ``near`` s."""
    frame = rate // 100
    quiet = _frame_db(pcm, frame) < _frame_db(pcm, frame).max() - 40
    gaps, start = [], None
    for i, q in enumerate([*quiet, False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start >= 6:
                gaps.append(start / 100)
            start = None
    if not gaps:
        return near
    return min(gaps, key=lambda g: abs(g - near))


def phone_line(pcm: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Speech at 8 kHz through µ-law, over line noise ~-66 dBFS."""
    speech = resample(pcm, rate, RATE).astype(np.float64)
    noisy = speech + rng.normal(0.0, 16.0, len(speech))
    return ulaw_decode(ulaw_encode(np.clip(np.rint(noisy), -32768, 32767).astype(np.int16)))


def silence(seconds: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0.0, 16.0, int(seconds * RATE))
    return ulaw_decode(ulaw_encode(np.rint(noise).astype(np.int16)))


def complete_turn(speak: Speak, text: str, rng: np.random.Generator) -> AudioChunk:
    """A finished turn as the model sees it 200 ms into the silence after it."""
    said = speak(text)
    speech = trim(said.pcm, said.rate)
    line = phone_line(speech, said.rate, rng)
    return AudioChunk(np.concatenate([silence(0.3, rng), line, silence(TRAILING, rng)]), RATE)


def paused_turn(speak: Speak, before: str, after: str, rng: np.random.Generator) -> AudioChunk:
    """A turn said whole with a comma at the pause, cut at the pause plus 200 ms of silence."""
    alone = speak(before)
    whole = speak(f"{before}, {after}")
    speech = trim(whole.pcm, whole.rate)
    expected = len(trim(alone.pcm, alone.rate)) / alone.rate
    cut = pause_start(speech, whole.rate, expected)
    line = phone_line(speech[:int(cut * whole.rate)], whole.rate, rng)
    return AudioChunk(np.concatenate([silence(0.3, rng), line, silence(TRAILING, rng)]), RATE)


def utterances(speakers: list[tuple[str, Speak]]
               ) -> Iterator[tuple[str, str, str, bool, float, AudioChunk]]:
    """(text, words, voice, complete, pause, audio): each sentence by two voices, in turn."""
    rng = np.random.default_rng(9)
    n = len(speakers)
    for i, text in enumerate(COMPLETE):
        for name, speak in (speakers[i % n], speakers[(i + n // 2) % n]):
            yield text, text, name, True, 0.0, complete_turn(speak, text, rng)
    for i, (before, after) in enumerate(PAUSED):
        for k, (name, speak) in enumerate((speakers[i % n], speakers[(i + n // 2) % n])):
            pause = PAUSES[(2 * i + k) % len(PAUSES)]
            yield (f"{before} … {after}", before, name, False, pause,
                   paused_turn(speak, before, after, rng))
