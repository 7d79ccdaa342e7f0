"""Inference threads yield the CPU to the event loop that paces the audio."""

from __future__ import annotations

import os
import threading

INFERENCE_NICE = 5


def lower_thread_priority(nice: int = INFERENCE_NICE) -> None:
    """Raise this thread's nice value (Linux: per thread; threads it starts inherit it).

    On two cores, whisper.cpp, llama.cpp and onnxruntime threads otherwise compete on equal
    terms with the thread that sends a 20 ms frame every 20 ms. Best effort: a sandbox that
    forbids setpriority leaves things as they are.

    The main thread is never lowered: it runs the event loop that paces audio (the daemon's,
    or a test phone's that synthesized its own prompts with the voice), and on Linux a
    lowered thread can not raise itself again without privilege.
    """
    here = threading.current_thread()
    if getattr(here, "_switchboard_niced", False) or here is threading.main_thread():
        return
    try:
        current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        if current < nice:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (OSError, AttributeError):
        return
    here._switchboard_niced = True  # type: ignore[attr-defined]
