"""The PNG of ``switchboard bench``: voice-to-voice per concurrency, stage breakdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

STAGE_LABELS = {
    "turn_detected": "turn detection",
    "stt_done": "speech-to-text",
    "llm_first_token": "LLM first token",
    "first_clause": "first clause",
    "tts_first_audio": "TTS first audio",
    "first_audio_out": "playout start",
}


def stage_increments(stages_ms: dict[str, dict[str, Any]]) -> list[tuple[str, float]]:
    """Bands of a median timeline: each stage's band ends at that stage's p50.

    Stages are ordered by their medians (transcription may finish before the turn is
    declared over when it runs speculatively); stages without data are left out.
    """
    marks = sorted((p50, label) for stage, label in STAGE_LABELS.items()
                   if (p50 := (stages_ms.get(stage) or {}).get("p50")) is not None)
    out, previous = [], 0.0
    for p50, label in marks:
        out.append((label, p50 - previous))
        previous = p50
    return out


def _v2v_samples(level: dict[str, Any]) -> list[float]:
    return [t["v2v_ms"] for t in level["samples"]["turns"] if t["v2v_ms"] is not None]


def _plot_v2v(ax, levels: list[dict[str, Any]]) -> None:
    rng = np.random.default_rng(1)
    for pos, level in enumerate(levels, 1):
        data = _v2v_samples(level)
        if not data:
            continue
        ax.boxplot([data], positions=[pos], widths=0.5, showfliers=False)
        ax.scatter(pos + rng.uniform(-0.15, 0.15, len(data)), data, s=12, alpha=0.6,
                   color="tab:blue", zorder=3)
    ax.set_xticks(range(1, len(levels) + 1), [str(lvl["concurrency"]) for lvl in levels])
    ax.set_xlim(0.4, len(levels) + 0.6)
    ax.set_xlabel("simultaneous calls")
    ax.set_ylabel("ms")
    ax.set_ylim(bottom=0)
    ax.set_title("voice-to-voice at the caller")
    ax.grid(axis="y", alpha=0.3)


def _plot_stages(ax, levels: list[dict[str, Any]]) -> None:
    staged = [lvl for lvl in levels if lvl.get("stages_ms")]
    if not staged:
        ax.text(0.5, 0.5, "no stage data\n(daemon records need --sandbox)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    colours = dict(zip([*STAGE_LABELS.values(), "caller v2v beyond daemon"],
                       [f"C{i}" for i in range(7)], strict=True))
    used: set[str] = set()
    for pos, level in enumerate(staged):
        parts = stage_increments(level["stages_ms"])
        total = sum(v for _label, v in parts)
        v2v = level["v2v_ms"].get("p50")
        if v2v is not None and v2v > total:
            parts.append(("caller v2v beyond daemon", v2v - total))
        bottom = 0.0
        for label, value in parts:
            ax.bar(pos, value, bottom=bottom, color=colours[label], width=0.6,
                   label=None if label in used else label)
            used.add(label)
            bottom += value
    ax.set_xticks(range(len(staged)), [str(lvl["concurrency"]) for lvl in staged])
    ax.set_xlabel("simultaneous calls")
    ax.set_ylabel("ms after end of caller speech")
    ax.set_title("median timeline: each band ends at its stage's p50")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)


def plot(results: dict[str, Any], path: Path) -> None:
    """Write the two-panel PNG for ``results`` (the bench JSON) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    _plot_v2v(left, results["levels"])
    _plot_stages(right, results["levels"])
    m = results["machine"]
    fig.suptitle(f"Switchboard bench ({results['mode']}) — {m['cores']} cores {m['cpu_model']}; "
                 f"{' / '.join(str(v) for v in results['models'].values())}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
