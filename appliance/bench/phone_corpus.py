"""Phone speech made at run time: several voices, G.711 µ-law/A-law, noise and packet loss.

Each sentence is spoken by one voice (a Piper voice with varied pace and expression, an
espeak-ng variant, a Flite voice or Festival's HTS voice), set to a caller's level, given
line noise (white, pink, or babble made from the other utterances), encoded with G.711, cut
into 20 ms RTP packets, thinned by bursty loss, and passed through the agent's own jitter
buffer and concealment. Everything is seeded except Piper's own sampling noise (onnxruntime
draws it unseeded), so Piper-voiced clips differ slightly from run to run; the other
engines, noise, codec and loss are exact.

The engines are three kinds of speech: Piper is a neural voice, Flite's and Festival's
voices are cut from recordings of people (unit selection, diphones) or modelled on them
(HTS), and espeak-ng's are formant synthesis, the hardest to understand on a phone line.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from agent.media.audio import AudioChunk, read_wav
from agent.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from agent.media.jitter import JitterBuffer
from agent.media.resample import resample
from agent.media.rtp import RtpPacket
from appliance.bench.phone_sentences import Sentence, sentences

RATE = 8000
FRAME = 160  # samples per 20 ms packet
LEAD, TAIL = 0.25, 0.45  # seconds of line before and after the speech (as the turn detector cuts)


@dataclass(frozen=True)
class Voice:
    """A way of speaking: engine, its voice/variant, pace and pitch."""

    name: str
    engine: str  # "piper", "espeak", "flite" or "festival"
    variant: str = ""  # espeak-ng voice+variant ("en-us+f3"), Flite or Festival voice name
    # piper length scale and Flite duration stretch (bigger is slower), or espeak-ng words
    # per minute / 175
    speed: float = 1.0
    pitch: int = 50  # espeak pitch 0-99
    expressive: float = 0.667  # piper noise scale
    held_out: bool = False


VOICES: tuple[Voice, ...] = (
    Voice("piper-joe", "piper"),
    Voice("piper-joe-fast", "piper", speed=0.82, expressive=0.8),
    Voice("espeak-us-m3", "espeak", "en-us+m3", speed=0.95, pitch=45),
    Voice("espeak-us-f2", "espeak", "en-us+f2", speed=1.0, pitch=60),
    Voice("espeak-gb-m1", "espeak", "en-gb+m1", speed=0.9, pitch=40),
    Voice("espeak-029-f4", "espeak", "en-029+f4", speed=0.9, pitch=55),
    Voice("piper-joe-slow", "piper", speed=1.2, expressive=0.5, held_out=True),
    Voice("espeak-scot-f3", "espeak", "en-gb-scotland+f3", speed=0.95, pitch=58, held_out=True),
    Voice("espeak-rp-m4", "espeak", "en-gb-x-rp+m4", speed=1.05, pitch=35, held_out=True),
    Voice("flite-slt", "flite", "slt"),
    Voice("flite-rms", "flite", "rms", speed=0.9),
    Voice("flite-kal16", "flite", "kal16", speed=1.1),
    Voice("festival-slt-hts", "festival", "cmu_us_slt_arctic_hts"),
    Voice("flite-awb", "flite", "awb", held_out=True),
)
FESTIVAL_VOICES = Path("/usr/share/festival/voices")
ENGINES = {  # engine: (what it needs: a program, or a file or folder; Debian packages)
    "espeak": (("espeak-ng",), "espeak-ng"),
    "flite": (("flite",), "flite"),
    "festival": (("text2wave", str(FESTIVAL_VOICES / "us/cmu_us_slt_arctic_hts")),
                 "festival festvox-us-slt-hts"),
}


@dataclass(frozen=True)
class Condition:
    """What the line does to the audio."""

    name: str
    snr_db: float | None = None
    loss: float = 0.0


CONDITIONS: tuple[Condition, ...] = (
    Condition("clean"),
    Condition("noise15", snr_db=15.0),
    Condition("noise10", snr_db=10.0),
    Condition("loss2", loss=0.02),
    Condition("loss5", loss=0.05),
)
CODECS = ("ulaw", "alaw")
NOISES = ("white", "pink", "babble")


@dataclass(frozen=True)
class Clip:
    """One utterance as the transcriber receives it, with what was said."""

    id: str
    sentence: Sentence
    voice: Voice
    condition: str
    codec: str
    noise: str | None
    audio: AudioChunk

    @property
    def held_out(self) -> bool:
        return self.sentence.held_out or self.voice.held_out


def missing_engines(voices: tuple[Voice, ...] = VOICES) -> list[str]:
    """The Debian packages to install for ``voices`` (none when every program is there)."""
    def there(need: str) -> bool:
        return Path(need).exists() if need.startswith("/") else shutil.which(need) is not None

    return [ENGINES[e][1] for e in sorted({v.engine for v in voices} & ENGINES.keys())
            if not all(there(need) for need in ENGINES[e][0])]


class Speaker:
    """Speaks text with any voice of :data:`VOICES` (Piper from a model file, the others with
    their Debian programs)."""

    def __init__(self, piper_model: Path) -> None:
        self._piper_model = piper_model
        if missing := missing_engines():
            raise RuntimeError(f"voices of the evaluation are missing: apt-get install "
                               f"{' '.join(missing)}")

    @cache  # noqa: B019 - one loaded voice per speaker, kept for its lifetime
    def _piper(self):
        from piper import PiperVoice

        return PiperVoice.load(str(self._piper_model))

    def say(self, text: str, voice: Voice) -> AudioChunk:
        """``text`` spoken by ``voice`` at the engine's own rate."""
        if voice.engine == "piper":
            from piper import SynthesisConfig

            piper = self._piper()
            config = SynthesisConfig(length_scale=voice.speed, noise_scale=voice.expressive)
            pcm = np.concatenate([c.audio_int16_array for c in piper.synthesize(text, config)])
            return AudioChunk(pcm, int(piper.config.sample_rate))
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "say.wav"
            if voice.engine == "espeak":
                command = ["espeak-ng", "-v", voice.variant, "-s", str(round(175 * voice.speed)),
                           "-p", str(voice.pitch), "-w", str(wav), text]
            elif voice.engine == "flite":
                command = ["flite", "-voice", voice.variant,
                           "--setf", f"duration_stretch={voice.speed}", "-t", text, "-o", str(wav)]
            elif voice.engine == "festival":
                script = Path(tmp) / "say.txt"
                script.write_text(text)
                command = ["text2wave", "-eval", f"(voice_{voice.variant})", str(script),
                           "-o", str(wav)]
            else:
                raise ValueError(f"unknown speech engine {voice.engine!r}")
            subprocess.run(command, check=True, capture_output=True)
            return read_wav(wav)


def speech_level(pcm: np.ndarray) -> float:
    """Mean power of the active part (20 ms frames within 35 dB of the loudest)."""
    x = pcm.astype(np.float64)
    frames = x[: len(x) // FRAME * FRAME].reshape(-1, FRAME)
    power = (frames**2).mean(axis=1)
    if not len(power) or power.max() <= 0:
        return 0.0
    return float(power[power > power.max() * 10 ** (-3.5)].mean())


def make_noise(kind: str, n: int, rng: np.random.Generator, babble: list[np.ndarray]) -> np.ndarray:
    """``n`` samples of unit-power noise: white, pink (1/f) or babble (four other talkers)."""
    if kind == "white":
        noise = rng.standard_normal(n)
    elif kind == "pink":
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.arange(len(spectrum), dtype=np.float64)
        freqs[0] = 1.0
        noise = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    elif kind == "babble":
        noise = np.zeros(n)
        for talker in rng.choice(len(babble), size=min(4, len(babble)), replace=False):
            voice = babble[int(talker)].astype(np.float64)
            start = int(rng.integers(len(voice)))
            looped = np.tile(np.roll(voice, -start), n // len(voice) + 1)[:n]
            noise += looped / np.sqrt(max(speech_level(voice), 1.0))
    else:
        raise ValueError(f"unknown noise {kind!r}")
    return noise / np.sqrt(max(float((noise**2).mean()), 1e-12))


def through_line(pcm: np.ndarray, codec: str, loss: float, rng: np.random.Generator) -> np.ndarray:
    """8 kHz int16 through G.711, 20 ms RTP packets, bursty loss, jitter and the jitter buffer."""
    encode, decode = (ulaw_encode, ulaw_decode) if codec == "ulaw" else (alaw_encode, alaw_decode)
    payload = encode(pcm)
    buffer = JitterBuffer(RATE)
    out: list[np.ndarray] = []
    lost = False
    count = len(payload) // FRAME
    # Gilbert model: mean loss rate ``loss``, losses come in bursts of ~1.5 packets.
    stay = 1 / 3
    enter = loss * (1 - stay) / max(1 - loss, 1e-9)
    for i in range(count):
        lost = rng.random() < (stay if lost else enter)
        if not lost:
            packet = RtpPacket(0 if codec == "ulaw" else 8, i, i * FRAME, 0x5EED, b"")
            arrival = i * 0.02 + float(rng.uniform(0.0, 0.012))
            buffer.push(packet, decode(payload[i * FRAME:(i + 1) * FRAME]), arrival)
        out.extend(c.pcm for c in buffer.pop(i * 0.02))
    out.extend(c.pcm for c in buffer.flush())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)


def build_corpus(speaker: Speaker, count: int = 96, seed: int = 7,
                 progress: Callable[[str], None] = lambda _: None) -> list[Clip]:
    """``count`` sentences, each spoken once and sent through every condition."""
    rng = random.Random(seed)
    said = sentences(count, seed)
    voices = [VOICES[(i + rng.randrange(2)) % len(VOICES)] for i in range(count)]
    rng.shuffle(voices)
    clean: list[np.ndarray] = []
    for i, (sentence, voice) in enumerate(zip(said, voices, strict=True)):
        if i % 16 == 0:
            progress(f"speaking sentence {i + 1}/{count}")
        spoken = speaker.say(sentence.text, voice)
        narrow = resample(spoken.pcm, spoken.rate, RATE).astype(np.float64)
        level_db = rng.uniform(-30.0, -16.0)  # callers' speech level, dBFS
        narrow *= 10 ** (level_db / 20) * 32768 / np.sqrt(max(speech_level(narrow), 1.0))
        silence = np.zeros(round(LEAD * RATE)), np.zeros(round(TAIL * RATE))
        clean.append(np.concatenate([silence[0], narrow, silence[1]]))
    clips: list[Clip] = []
    for i, (sentence, voice, speech) in enumerate(zip(said, voices, clean, strict=True)):
        others = [c for j, c in enumerate(clean) if j != i]
        for k, cond in enumerate(CONDITIONS):
            noise_rng = np.random.default_rng([seed, i, k])
            codec = CODECS[(i + k) % 2]
            signal = speech.copy()
            noise_kind = None
            if cond.snr_db is not None:
                noise_kind = NOISES[(i + k) % len(NOISES)]
                gain = np.sqrt(speech_level(speech) / 10 ** (cond.snr_db / 10))
                signal += gain * make_noise(noise_kind, len(signal), noise_rng, others)
            pcm = np.clip(np.rint(signal), -32768, 32767).astype(np.int16)
            heard = through_line(pcm, codec, cond.loss, noise_rng)
            clips.append(Clip(f"{i:03d}-{cond.name}-{codec}", sentence, voice, cond.name,
                              codec, noise_kind, AudioChunk(heard, RATE)))
    return clips
