"""``switchboard eval stt``: word error rate and latency of the transcriber on phone speech.

The corpus (:mod:`appliance.bench.phone_corpus`) is generated at run time from a seed, so the
numbers reproduce. Results are reported per line condition, per codec, for the tuning split
and the held-out split (voices and sentence templates never used while tuning), with the
transcriber's latency per utterance (wall time of one ``transcribe`` call, one at a time).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.speech.transcriber import Transcriber, looks_like_a_loop
from agent.speech.word_bias import words_in
from appliance.bench.phone_corpus import CODECS, CONDITIONS, Clip, Speaker, build_corpus
from appliance.bench.phone_sentences import BUSINESS_TEXTS
from appliance.bench.wer import normalize, word_errors

DEFAULT_SEED = 7
DEFAULT_SENTENCES = 96


@dataclass(frozen=True)
class Result:
    """One clip transcribed."""

    clip: Clip
    text: str
    errors: int
    words: int
    seconds: float  # wall time of the call
    cpu_seconds: float  # CPU time of the whole process during the call (all threads)


def wer_of(results: Iterable[Result]) -> dict[str, float | int]:
    """Pooled WER (total errors over total reference words) of ``results``."""
    items = list(results)
    errors = sum(r.errors for r in items)
    words = sum(r.words for r in items)
    return {"wer": round(errors / words, 4) if words else 0.0, "errors": errors,
            "words": words, "utterances": len(items)}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


async def transcribe_all(stt: Transcriber, clips: list[Clip], progress: Callable[[str], None],
                         words: tuple[str, ...] = ()) -> list[Result]:
    """Each clip through ``stt`` one after another, timed (``words``: the agent's words)."""
    results: list[Result] = []
    for i, clip in enumerate(clips):
        began, cpu = time.perf_counter(), time.process_time()
        transcript = await stt.transcribe(clip.audio, words)
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
        errors, count = word_errors(clip.sentence.text, transcript.text)
        results.append(Result(clip, transcript.text, errors, count, elapsed, cpu))
        if (i + 1) % 50 == 0:
            progress(f"transcribed {i + 1}/{len(clips)}")
    return results


def business_words_heard(results: Iterable[Result]) -> dict[str, int]:
    """How many times a business's word or name (``BUSINESS_TEXTS``) was said, and heard."""
    def spaced(text: str) -> str:
        return f" {' '.join(normalize(text))} "

    keys = [spaced(text) for text in BUSINESS_TEXTS]
    said = heard = 0
    for r in results:
        sentence, transcript = spaced(r.clip.sentence.text), spaced(r.text)
        for key in keys:
            if key in sentence:
                said += 1
                heard += key in transcript
    return {"said": said, "heard": heard}


def summarize(results: list[Result]) -> dict:
    """The report: WER overall, per split, condition, codec and cell; latency; worst clips."""
    def where(pred: Callable[[Result], bool]) -> list[Result]:
        return [r for r in results if pred(r)]

    seconds = [r.seconds for r in results]
    short = [r.seconds for r in results if r.clip.audio.seconds <= 8.0]
    cpu = [r.cpu_seconds for r in results if r.clip.audio.seconds <= 8.0]
    loops = [r for r in results if r.errors > r.words]
    worst = sorted(results, key=lambda r: (r.errors / max(r.words, 1), r.errors), reverse=True)
    return {
        "overall": wer_of(results),
        "splits": {"tune": wer_of(where(lambda r: not r.clip.held_out)),
                   "held_out": wer_of(where(lambda r: r.clip.held_out))},
        "conditions": {c.name: wer_of(where(lambda r, c=c: r.clip.condition == c.name))
                       for c in CONDITIONS},
        "codecs": {k: wer_of(where(lambda r, k=k: r.clip.codec == k)) for k in CODECS},
        "cells": {f"{k}/{c.name}": wer_of(where(lambda r, c=c, k=k: r.clip.condition == c.name
                                                and r.clip.codec == k))
                  for c in CONDITIONS for k in CODECS},
        "voices": {v: wer_of(where(lambda r, v=v: r.clip.voice.name == v))
                   for v in sorted({r.clip.voice.name for r in results})},
        "business_words": business_words_heard(results),
        "more_errors_than_words": len(loops),
        # of those, transcripts that repeat a phrase or hold more words than the audio can
        "loops": sum(looks_like_a_loop(r.text, r.clip.audio.seconds) for r in loops),
        "latency_ms": {"p50": round(percentile(short, 50) * 1000, 1),
                       "p95": round(percentile(short, 95) * 1000, 1),
                       "max": round(max(seconds, default=0.0) * 1000, 1),
                       "utterances_up_to_8s": len(short)},
        # CPU time per call: on an idle machine the wall time is about this over the threads
        "cpu_ms": {"p50": round(percentile(cpu, 50) * 1000, 1),
                   "p95": round(percentile(cpu, 95) * 1000, 1)},
        "audio_seconds": {"p50": round(percentile([r.clip.audio.seconds for r in results], 50), 2),
                          "max": round(max((r.clip.audio.seconds for r in results),
                                           default=0.0), 2)},
        "worst": [{"id": r.clip.id, "voice": r.clip.voice.name, "said": r.clip.sentence.text,
                   "heard": r.text, "errors": r.errors, "words": r.words}
                  for r in worst[:8]],
    }


def format_report(report: dict) -> str:
    """A short table for the terminal (and the second pass with words, when made)."""
    text = _format(report)
    if "with_words" in report:
        text += "\n\nwith the business's words favoured (same clips):\n" + _format(
            {**report["with_words"], **{k: report[k] for k in ("model", "corpus", "machine")}})
    return text


def _format(report: dict) -> str:
    def row(name: str, cell: dict) -> str:
        return (f"  {name:22} {100 * cell['wer']:6.1f} %  {cell['errors']:5d} / {cell['words']:5d}"
                f" words  {cell['utterances']:4d} utt")

    lines = [f"model {report['model']}  ({report['corpus']['clips']} clips, "
             f"{report['corpus']['sentences']} sentences, seed {report['corpus']['seed']})",
             row("overall", report["overall"])]
    lines += [row(f"split {k}", v) for k, v in report["splits"].items()]
    lines += [row(k, v) for k, v in report["conditions"].items()]
    lines += [row(k, v) for k, v in report["codecs"].items()]
    lat = report["latency_ms"]
    lines.append(f"  latency per utterance  p50 {lat['p50']:.0f} ms  p95 {lat['p95']:.0f} ms  "
                 f"max {lat['max']:.0f} ms  (CPU per call p50 {report['cpu_ms']['p50']:.0f} ms,"
                 f" p95 {report['cpu_ms']['p95']:.0f} ms; load {report['machine']['load_before']})")
    lines.append(f"  utterances with more errors than words: {report['more_errors_than_words']}"
                 f" (decoder loops among them: {report['loops']})")
    names = report["business_words"]
    lines.append(f"  the business's words and names heard: {names['heard']} of {names['said']}")
    return "\n".join(lines)


def evaluate(stt: Transcriber, speaker: Speaker, *, sentences: int = DEFAULT_SENTENCES,
             seed: int = DEFAULT_SEED, limit: int | None = None, words: bool = False,
             progress: Callable[[str], None] = lambda _: None) -> tuple[dict, list[Result]]:
    """Build the corpus, transcribe it, and summarise; also returns every result. With
    ``words`` the same clips are transcribed a second time with a clinic's words favoured,
    as its agent would have them (``AgentSpec.heard_words``), reported as ``with_words``."""
    clips = build_corpus(speaker, sentences, seed, progress)
    if limit is not None:
        clips = clips[:limit]
    load_before = os.getloadavg()[0]
    results = asyncio.run(transcribe_all(stt, clips, progress))
    report = summarize(results)
    if words:
        progress("again, with the business's words")
        results = asyncio.run(transcribe_all(stt, clips, progress, words_in(BUSINESS_TEXTS)))
        report["with_words"] = summarize(results)
    report["corpus"] = {"seed": seed, "sentences": sentences, "clips": len(clips)}
    report["machine"] = {"cpus": os.cpu_count(), "load_before": round(load_before, 2),
                         "load_after": round(os.getloadavg()[0], 2)}
    return report, results


def cli_main(model: str, data_dir: Path, json_path: Path | None, limit: int | None,
             seed: int, sentences: int, words: bool = False) -> int:
    """Run the evaluation for ``switchboard eval stt``."""
    from agent.speech.engines import open_transcriber
    from appliance.models.defaults import TTS_DEFAULT
    from appliance.models.store import ModelError, ModelStore

    store = ModelStore(data_dir / "models")
    try:
        model_path = Path(model) if Path(model).is_file() else store.path(model, "stt")
        voice_path = store.path(TTS_DEFAULT.name, "tts")
        speaker = Speaker(voice_path)
    except (ModelError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    def progress(message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    stt = open_transcriber(model_path, threads=2)
    report, _ = evaluate(stt, speaker, sentences=sentences, seed=seed, limit=limit,
                         words=words, progress=progress)
    report["model"] = model
    if json_path:
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    if json_path:
        print(f"wrote {json_path}")
    return 0
