"""Inference threads are lowered; the thread that runs the event loop never is."""

from __future__ import annotations

import os
import threading

from agent.speech.priority import INFERENCE_NICE, lower_thread_priority


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_a_worker_thread_is_lowered_and_the_main_thread_is_not() -> None:
    before = _nice()
    seen: list[int] = []

    def work() -> None:
        lower_thread_priority()
        seen.append(_nice())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [max(before, INFERENCE_NICE)]
    lower_thread_priority()  # e.g. a test phone synthesizing its prompts on its loop's thread
    assert _nice() == before
