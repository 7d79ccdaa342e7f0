"""Barge-in evaluation: what sounds over the agent's answer stop it, and what let it go on.

    switchboard eval bargein [--json OUT]

Each sound is made at run time and put through the phone line (G.711 µ-law or A-law, some
with 15 dB of noise, the project's jitter buffer): backchannels ("mm-hm", "yeah", "okay" …)
and real interruptions ("wait", "hold on", "no, that's not what I asked" …) said by the
Piper and espeak-ng voices of the speech evaluation (the agent's own voice among them, and
three held out), and non-speech (coughs, a click, a burst of line noise) synthesised from
shaped noise — no recordings can be fetched here. Each is fed, frame by frame, to the
agent's own turn taker and conversation logic with the agent speaking throughout; a sound
the conversation wants judged is transcribed by the agent's transcriber.

Reported: answers lost to a backchannel or noise (it interrupted), interruptions missed (the
answer went on), how soon the agent's audio was held after the sound began, and how long
after the sound ended the agent went on or gave up the floor.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from agent.conversation import Act, Conversation, Timers, barge_in_floor
from agent.media.audio import AudioChunk
from agent.media.resample import resample
from agent.speech.completion import backchannel
from agent.speech.transcriber import Transcriber
from agent.speech.turns import SpeechStarted, TurnSettings, TurnTaker
from appliance.bench.phone_corpus import VOICES, Speaker, make_noise, speech_level, through_line
from appliance.bench.stt_eval import percentile

RATE = 8000
FRAME = RATE // 50
BACKCHANNELS = ("Mm-hm.", "Uh-huh.", "Yeah.", "Okay.", "Right.", "Sure.", "I see.",
                "Got it.", "Yeah, yeah.")
INTERRUPTIONS = ("Wait.", "Stop.", "No.", "What?", "Hold on.", "Sorry, what?", "Excuse me.",
                 "Wait, what about Saturday?", "No, that's not what I asked.",
                 "Can I ask something else?")
LINES = (("ulaw", None), ("alaw", None), ("ulaw", 15.0))
BEFORE, AFTER = 0.4, 2.0  # s of line silence around each sound


@dataclass
class Outcome:
    """One sound over the agent and what the conversation did."""

    kind: str  # backchannel | interruption | noise
    text: str
    voice: str
    line: str
    decision: str  # resumed | interrupted | ignored (too short to hold the agent) | held
    heard: str  # what the transcriber made of it ('' when not asked)
    held_ms: float | None  # sound start → the agent's audio held
    decided_ms: float | None  # sound end → resumed or interrupted

    @property
    def right(self) -> bool:
        if self.kind == "interruption":
            return self.decision == "interrupted"
        return self.decision in ("resumed", "ignored")


def cough(rng: np.random.Generator) -> np.ndarray:
    """One or two bursts of shaped broadband noise, 0.12–0.3 s each: a cough."""
    parts = []
    for _ in range(int(rng.integers(1, 3))):
        n = int(RATE * rng.uniform(0.12, 0.3))
        t = np.arange(n) / RATE
        envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t / rng.uniform(0.05, 0.12))
        burst = rng.normal(0, 1, n)
        burst = np.convolve(burst, np.ones(3) / 3, mode="same")  # a little less hiss
        parts += [burst * envelope * rng.uniform(6000, 12000), np.zeros(int(RATE * 0.08))]
    return np.clip(np.concatenate(parts), -32767, 32767).astype(np.int16)


def click(rng: np.random.Generator) -> np.ndarray:
    n = int(RATE * 0.03)
    return (rng.normal(0, 9000, n) * np.exp(-np.arange(n) / 40)).astype(np.int16)


def noise_burst(rng: np.random.Generator) -> np.ndarray:
    """0.3–0.6 s of pink noise, as a line crackles."""
    n = int(RATE * rng.uniform(0.3, 0.6))
    return (make_noise("pink", n, rng, []) * rng.uniform(1500, 5000)).astype(np.int16)


def sounds(speaker: Speaker, rng: np.random.Generator,
           progress: Callable[[str], None]) -> list[tuple[str, str, str, np.ndarray]]:
    """(kind, text, voice, 8 kHz PCM) for every sound, before the line."""
    out = []
    for voice in VOICES:
        progress(f"voice {voice.name}")
        for kind, texts in (("backchannel", BACKCHANNELS), ("interruption", INTERRUPTIONS)):
            for text in texts:
                chunk = speaker.say(text, voice)
                pcm = resample(chunk.pcm, chunk.rate, RATE)
                rms = np.sqrt(max(speech_level(pcm), 1.0))  # speech at about -20 dBFS
                pcm = np.clip(pcm * (10 ** (-20 / 20) * 32767 / rms), -32767,
                              32767).astype(np.int16)
                out.append((kind, text, voice.name, pcm))
    for _ in range(8):
        out.append(("noise", "cough", "-", cough(rng)))
    for _ in range(4):
        out.append(("noise", "click", "-", click(rng)))
        out.append(("noise", "line noise", "-", noise_burst(rng)))
    return out


def judge(pcm: np.ndarray, transcribe: Callable[[AudioChunk], str],
          timers: Timers) -> tuple[str, str, float | None, float | None]:
    """The conversation's decision on ``pcm`` said over the agent, on the frame clock."""
    audio = np.concatenate([np.zeros(int(RATE * BEFORE), np.int16), pcm,
                            np.zeros(int(RATE * AFTER), np.int16)])
    taker = TurnTaker(RATE, TurnSettings(min_speech=0.15, end_silence=1.0))
    conv = Conversation(timers)
    start, end = BEFORE, BEFORE + len(pcm) / RATE
    held = decided = None
    decision, heard = "held", ""
    for i in range(len(audio) // FRAME):
        now = (i + 1) * FRAME / RATE
        events = taker.feed(audio[i * FRAME:(i + 1) * FRAME])
        d = taker.detector
        acts = conv.frame(started=any(isinstance(e, SpeechStarted) for e in events),
                          ended=len(events) > 0 and not isinstance(events[-1], SpeechStarted),
                          caller_speaking=d.speaking, silence=d.silence, speech_seconds=d.span,
                          agent_speaking=True, onset=d.onset, quiet=d.quiet)
        for act in [x.act for x in acts]:
            if act is Act.END_TURN:
                taker.end_now()
            elif act is Act.CHECK:
                pending = d.pending_turn()
                assert pending is not None
                heard = transcribe(taker.audio(pending))
                acts += conv.checked(backchannel(heard, agent_asks=False), d.speaking)
        for act in [x.act for x in acts]:
            if act is Act.PAUSE and held is None:
                held = now - start
            elif act in (Act.RESUME, Act.INTERRUPT) and decision == "held":
                decision = "resumed" if act is Act.RESUME else "interrupted"
                decided = now - end
        if decision != "held":
            break
    if held is None:
        decision = "ignored"
    return decision, heard, held, decided


def evaluate(stt: Transcriber, speaker: Speaker, *, seed: int = 11,
             timers: Timers | None = None,
             progress: Callable[[str], None] = lambda _: None) -> tuple[dict, list[Outcome]]:
    """Every sound through every line; the report and each outcome."""
    rng = np.random.default_rng(seed)
    timers = timers or Timers()
    loop = asyncio.new_event_loop()

    def transcribe(chunk: AudioChunk) -> str:
        return loop.run_until_complete(stt.transcribe(chunk)).text

    outcomes = []
    try:
        for kind, text, voice, pcm in sounds(speaker, rng, progress):
            for codec, snr in LINES:
                line = codec if snr is None else f"{codec}+noise{snr:g}"
                sent = pcm
                if snr is not None:
                    noise = make_noise("white", len(pcm), rng, [])  # unit power
                    gain = np.sqrt(speech_level(pcm)) / 10 ** (snr / 20)
                    sent = np.clip(pcm + noise * gain, -32767, 32767).astype(np.int16)
                sent = through_line(sent, codec, 0.0, rng)
                decision, heard, held, decided = judge(sent, transcribe, timers)
                outcomes.append(Outcome(kind, text, voice, line, decision, heard,
                                        None if held is None else round(held * 1000),
                                        None if decided is None else round(decided * 1000)))
    finally:
        loop.close()
    return summarize(outcomes, timers), outcomes


def summarize(outcomes: list[Outcome], timers: Timers) -> dict:
    def share(items: list[Outcome], *decisions: str) -> dict:
        n = sum(o.decision in decisions for o in items)
        return {"count": n, "of": len(items), "share": round(n / max(len(items), 1), 3)}

    def ms(values: list[float | None]) -> dict:
        got = [v for v in values if v is not None]
        return {"p50": round(percentile(got, 50)), "p95": round(percentile(got, 95))} \
            if got else {}

    by_kind = {k: [o for o in outcomes if o.kind == k]
               for k in ("backchannel", "interruption", "noise")}
    return {
        "settings": {"min_speech": timers.barge_in_min_speech,
                     "backchannel_max": timers.backchannel_max},
        "sounds": len(outcomes),
        "backchannels_lost": share(by_kind["backchannel"], "interrupted"),
        "noise_lost": share(by_kind["noise"], "interrupted"),
        "interruptions_missed": share(by_kind["interruption"], "resumed", "ignored"),
        "ignored": share(outcomes, "ignored"),
        "never_decided": share(outcomes, "held"),
        "held_ms": ms([o.held_ms for o in outcomes]),
        "resumed_after_ms": ms([o.decided_ms for o in outcomes if o.decision == "resumed"]),
        "interrupted_after_ms": ms([o.decided_ms for o in outcomes
                                    if o.decision == "interrupted"]),
        "lost_by_text": {t: sum(o.decision == "interrupted" for o in by_kind["backchannel"]
                                if o.text == t) for t in BACKCHANNELS},
        "missed_by_text": {t: sum(o.decision == "resumed" for o in by_kind["interruption"]
                                  if o.text == t) for t in INTERRUPTIONS},
        "machine": {"load": round(os.getloadavg()[0], 2)},
    }


def format_report(report: dict) -> str:
    def line(name: str, cell: dict) -> str:
        return f"  {name:26} {cell['count']:4d} / {cell['of']:4d}  ({100 * cell['share']:.1f} %)"

    return "\n".join([
        f"barge-in: {report['sounds']} sounds over an answer (min_speech "
        f"{report['settings']['min_speech']} s, backchannel_max "
        f"{report['settings']['backchannel_max']} s)",
        line("backchannels lost", report["backchannels_lost"]),
        line("noise lost", report["noise_lost"]),
        line("interruptions missed", report["interruptions_missed"]),
        line("too short to hold the agent", report["ignored"]),
        line("never decided", report["never_decided"]),
        f"  agent held after the sound began  p50 {report['held_ms'].get('p50')} ms  "
        f"p95 {report['held_ms'].get('p95')} ms",
        f"  resumed after the sound ended     p50 {report['resumed_after_ms'].get('p50')} ms"
        f"  p95 {report['resumed_after_ms'].get('p95')} ms",
        f"  gave up the floor after its end   p50 "
        f"{report['interrupted_after_ms'].get('p50')} ms  p95 "
        f"{report['interrupted_after_ms'].get('p95')} ms (speech of backchannel_max or "
        "more: while it goes on)",
    ])


def cli_main(model: str, data_dir: Path, json_path: Path | None, seed: int,
             min_speech: float | None, backchannel_max: float) -> int:
    """Run the evaluation for ``switchboard eval bargein``."""
    from agent.speech.engines import open_transcriber
    from appliance.models.defaults import TTS_DEFAULT
    from appliance.models.store import ModelError, ModelStore

    store = ModelStore(data_dir / "models")
    try:
        model_path = Path(model) if Path(model).is_file() else store.path(model, "stt")
        speaker = Speaker(store.path(TTS_DEFAULT.name, "tts"))
    except (ModelError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    stt = open_transcriber(model_path, threads=1)
    if min_speech is None:
        min_speech = barge_in_floor(stt.tells_noise)
    timers = Timers(barge_in_min_speech=min_speech, backchannel_max=backchannel_max)
    report, outcomes = evaluate(stt, speaker, seed=seed, timers=timers,
                                progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    report["model"] = model
    print(format_report(report))
    if json_path:
        json_path.write_text(json.dumps({**report, "outcomes": [
            {**asdict(o), "right": o.right} for o in outcomes]}, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0
