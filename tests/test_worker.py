"""One inference thread per model: urgent jobs first, dropped jobs never run."""

from __future__ import annotations

import asyncio
import threading

from agent.speech.worker import LATER, URGENT, InferenceWorker


async def test_urgent_jobs_overtake_waiting_ones_and_order_is_kept_within_a_rank() -> None:
    worker = InferenceWorker("test-worker")
    gate = threading.Event()
    order: list[str] = []

    def job(name: str) -> str:
        if name == "blocker":
            gate.wait(5)
        order.append(name)
        return name

    blocker = asyncio.create_task(worker.run(job, "blocker"))
    await asyncio.sleep(0.05)  # the worker is now busy with the blocker
    later = [asyncio.create_task(worker.run(job, f"draft{i}", priority=LATER)) for i in (1, 2)]
    await asyncio.sleep(0)
    urgent = [asyncio.create_task(worker.run(job, f"final{i}", priority=URGENT))
              for i in (1, 2)]
    await asyncio.sleep(0.05)
    gate.set()
    results = await asyncio.gather(blocker, *later, *urgent)
    assert order == ["blocker", "final1", "final2", "draft1", "draft2"]
    assert results == ["blocker", "draft1", "draft2", "final1", "final2"]


async def test_a_job_whose_caller_stopped_waiting_is_dropped_and_errors_reach_the_caller(
        ) -> None:
    worker = InferenceWorker("test-worker")
    gate = threading.Event()
    ran: list[str] = []

    def job(name: str) -> None:
        if name == "blocker":
            gate.wait(5)
        if name == "bad":
            raise ValueError("engine failed")
        ran.append(name)

    blocker = asyncio.create_task(worker.run(job, "blocker"))
    await asyncio.sleep(0.05)
    abandoned = asyncio.create_task(worker.run(job, "abandoned"))
    await asyncio.sleep(0)
    abandoned.cancel()  # barge-in: nobody wants this clause any more
    await asyncio.sleep(0)
    gate.set()
    await blocker
    try:
        await worker.run(job, "bad")
    except ValueError as err:
        assert "engine failed" in str(err)
    else:
        raise AssertionError("the engine's error was lost")
    assert ran == ["blocker"] and worker.dropped == 1


async def test_running_jobs_are_counted_for_the_language_model_to_share_cores() -> None:
    from agent.speech.worker import jobs_running

    worker = InferenceWorker("test-worker")
    inside: list[int] = []
    await worker.run(lambda: inside.append(jobs_running()))
    assert inside == [1] and jobs_running() == 0


def test_threads_are_planned_for_the_box_not_per_engine() -> None:
    from agent.speech.engines import ThreadPlan

    two = ThreadPlan.for_cores(2)
    assert (two.llm, two.stt, two.tts) == (2, 1, 1)  # the model: both cores when idle
    eight = ThreadPlan.for_cores(8)
    assert eight.llm == 8 and eight.stt_workers == 8


async def test_a_worker_is_idle_only_with_nothing_running_or_waiting() -> None:
    worker = InferenceWorker("test-worker")
    gate = threading.Event()
    assert worker.idle
    job = asyncio.create_task(worker.run(gate.wait, 5))
    await asyncio.sleep(0.05)
    assert not worker.idle
    gate.set()
    await job
    await asyncio.sleep(0.01)
    assert worker.idle


async def test_a_worker_with_two_threads_runs_two_jobs_side_by_side() -> None:
    worker = InferenceWorker("test-worker", threads=2)
    both = threading.Barrier(2, timeout=5)  # each job waits until the other is running too
    results = await asyncio.gather(worker.run(both.wait), worker.run(both.wait))
    assert sorted(results) == [0, 1] and worker.ran == 2


async def test_a_job_waits_for_a_wide_model_step_and_a_running_job_keeps_steps_narrow() -> None:
    from agent.speech import worker as workers

    worker = InferenceWorker("test-worker")
    assert workers.wide_step()  # nothing running: the model may take every core
    job = asyncio.create_task(worker.run(lambda: "heard"))
    await asyncio.sleep(0.05)
    assert not job.done() and workers.jobs_running() == 0  # held until the step ends
    assert not workers.wide_step()  # and the next step leaves it a core: it waits no more
    workers.narrow_step()
    assert await job == "heard"
    gate = threading.Event()
    long = asyncio.create_task(worker.run(gate.wait, 5))
    await asyncio.sleep(0.05)
    assert not workers.wide_step()  # a job is running: the step takes one core
    gate.set()
    await long
