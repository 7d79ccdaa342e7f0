"""Calls whose language model is on another machine that is down, on virtual time: the local
model answers, or without one the caller hears the error phrase and the call goes on."""

from __future__ import annotations

import dataclasses

from test_daemon import Rig, assert_serves
from test_fallback_chat import FakeRemote

from agent.speech.fallback_chat import FallbackChat


def use_remote(rig: Rig, name: str, with_local: bool) -> tuple[FallbackChat, FakeRemote]:
    """The agent's model becomes a remote one that refuses, over its fake local model."""
    engines = rig.daemon.engines[name]
    remote = FakeRemote(rig.clock)
    remote.mode, remote.healthy = "refuse", False
    chat = FallbackChat(remote, engines.chat if with_local else None, rig.clock)
    rig.daemon.engines[name] = rig.registry.engines[name] = dataclasses.replace(engines,
                                                                              chat=chat)
    return chat, remote


async def test_remote_down_the_local_model_answers_and_without_one_the_error_phrase() -> None:
    async with Rig() as rig:
        local_chat, _ = use_remote(rig, "alpha", with_local=True)
        bare_chat, _ = use_remote(rig, "beta", with_local=False)
        await rig.ring("a", "alpha")
        await rig.ring("b", "beta")
        await assert_serves(rig, "a")  # answered by the local model
        assert local_chat.counts == {"failed": 1, "local": 1}

        endpoint = rig.endpoint("b")
        before = rig.clock.now()
        await rig.say("b")
        await rig.quiet("b", 1.0)
        beta = rig.daemon.settings.agents["beta"]
        error = rig.registry.engines["beta"].phrases[beta.error_phrase].pcm
        sent = [f for t, f in endpoint.sent if t >= before and f.any()]
        assert sent and all((f == error[0]).all() for f in sent)  # only the error phrase
        assert bare_chat.counts == {"failed": 1, "unanswered": 1}
        assert rig.call("b") is not None  # the caller is still with the agent
        await assert_serves(rig, "a")
        await local_chat.close()
        await bare_chat.close()
