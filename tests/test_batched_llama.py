"""The batched language model on the real default model: same words as llama.cpp's own chat
completion, every call served at once, each conversation's cache kept."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from agent.speech.batched_llama import BatchedLlamaChatModel, ContextFull

SYSTEM = {"role": "system", "content": "You are the receptionist of Elm Street Dental. Answer "
          "in one or two short sentences. Opening hours: Monday to Friday 8 am to 6 pm."}
GREETING = {"role": "assistant", "content": "Hello, Elm Street Dental, how can I help?"}
QUESTIONS = ["What time do you open on Monday?", "Is there parking near the office?",
             "Can I book a cleaning next week?"]


def conversation(question: str) -> list:
    return [SYSTEM, GREETING, {"role": "user", "content": question}]


@pytest.fixture(scope="module")
def model_path(model_store):
    return model_store.path("smollm2-135m", "llm")


async def collect(model, messages, schema=None) -> tuple[str, float, float]:
    first, pieces = None, []
    async for piece in model.stream(messages, schema=schema):
        first = first if first is not None else time.monotonic()
        pieces.append(piece)
    return "".join(pieces), (first or 0.0), time.monotonic()


async def test_same_words_as_llama_cpp_chat_completion(model_path) -> None:
    from llama_cpp import Llama

    reference = Llama(model_path=str(model_path), n_ctx=2048, n_threads=1, flash_attn=True,
                      verbose=False)
    model = BatchedLlamaChatModel(model_path, slots=1, context=2048)
    try:
        for question in QUESTIONS[:2]:
            expected = reference.create_chat_completion(
                messages=conversation(question), max_tokens=200, temperature=0.0,
                top_p=0.9, repeat_penalty=1.1)["choices"][0]["message"]["content"]
            said, _, _ = await collect(model, conversation(question))
            assert said == expected
    finally:
        model.close()


async def test_calls_are_answered_together_and_each_keeps_its_own_cache(model_path) -> None:
    model = BatchedLlamaChatModel(model_path, slots=4)
    try:
        model.warm([SYSTEM, GREETING])
        results = await asyncio.gather(*[collect(model, conversation(q)) for q in QUESTIONS])
        assert all(text.strip() for text, _, _ in results)
        # No call waited for another's whole answer: every first piece came before any end.
        assert max(first for _, first, _ in results) < min(end for _, _, end in results)
        # The next turn of each call evaluates only what is new in it.
        before = model.evaluated
        follow = [conversation(q) + [{"role": "assistant", "content": text},
                                     {"role": "user", "content": "Thank you. And Sunday?"}]
                  for q, (text, _, _) in zip(QUESTIONS, results, strict=True)]
        prompt = len(model._model.tokenize(  # noqa: SLF001 - the prompt's own length
            model._format(messages=follow[0]).prompt.encode(), add_bos=False, special=True))
        await asyncio.gather(*[collect(model, m) for m in follow])
        assert (model.evaluated - before) / len(follow) < prompt / 3
        assert not any(slot.busy for slot in model.slots)
    finally:
        model.close()


async def test_json_schema_constrains_the_answer(model_path) -> None:
    schema = {"type": "object", "properties": {"day": {"type": "string",
                                                      "enum": ["Monday", "Tuesday"]}},
              "required": ["day"]}
    model = BatchedLlamaChatModel(model_path)
    try:
        text, _, _ = await collect(model, conversation("Book me on Monday."), schema)
        assert json.loads(text)["day"] in ("Monday", "Tuesday")
    finally:
        model.close()


async def test_a_stream_closed_early_frees_its_slot(model_path) -> None:
    model = BatchedLlamaChatModel(model_path, slots=1)
    try:
        stream = model.stream(conversation(QUESTIONS[0]))
        await anext(stream)
        await stream.aclose()  # barge-in
        text, _, _ = await asyncio.wait_for(collect(model, conversation(QUESTIONS[1])), 30)
        assert text.strip()
    finally:
        model.close()


async def test_a_conversation_too_long_for_the_context_fails_alone(model_path) -> None:
    model = BatchedLlamaChatModel(model_path, slots=2, context=512, sequence_context=512)
    try:
        long = conversation("Tell me about your clinic. " * 120)
        with pytest.raises(ContextFull):
            await collect(model, long)
        text, _, _ = await collect(model, conversation(QUESTIONS[0]))
        assert text.strip()
    finally:
        model.close()


async def test_a_full_cache_ends_the_newest_request_and_the_others_go_on(model_path) -> None:
    model = BatchedLlamaChatModel(model_path, slots=4, context=512, sequence_context=512)
    try:
        talk = [conversation(f"Question {i}: " + "please tell me about the clinic. " * 25)
                for i in range(4)]
        results = await asyncio.gather(*[collect(model, m) for m in talk],
                                       return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        assert failed and all(isinstance(r, ContextFull) for r in failed)
        assert len(failed) < len(talk)  # the others were answered
        text, _, _ = await collect(model, conversation(QUESTIONS[0]))
        assert text.strip()
    finally:
        model.close()


async def prefill(model, messages) -> int:
    """Prefill ``messages`` and wait until it is done (it runs when the model is idle: now);
    how many tokens it evaluated."""
    before = model.evaluated
    model.prefill(messages)
    for _ in range(200):
        if model.evaluated > before and not any(s.busy for s in model.slots):
            break
        await asyncio.sleep(0.01)
    return model.evaluated - before


async def test_the_conversation_so_far_is_evaluated_before_the_caller_speaks(
        model_path) -> None:
    """An answer the model did not write (a cached phrase) is in the cache before the
    caller's next words: the turn evaluates only those words, and answers as without (its
    opening: the same conversation evaluated in other pieces rounds a little differently,
    and a long answer may part later on)."""
    plain = BatchedLlamaChatModel(model_path, slots=2, flash_attention=False)
    ahead = BatchedLlamaChatModel(model_path, slots=2, flash_attention=False)
    try:
        said = [*conversation(QUESTIONS[0]),
                {"role": "assistant", "content": "I'm sorry, I don't have that information. "
                                                 "I can put you through to someone who can "
                                                 "help. Would you like that?"}]
        turn = [*said, {"role": "user", "content": "No thanks. When do you open?"}]
        expected, _, _ = await collect(plain, turn)
        ahead.warm(said[:2])
        before = ahead.evaluated
        prefilled = await prefill(ahead, [*said, {"role": "user", "content": ""}])
        answer, _, _ = await collect(ahead, turn)
        assert answer.split()[:8] == expected.split()[:8]
        # the caller's words and the turn's markers; without the prefill, the cached
        # phrase's ~30 tokens too
        words = len(ahead._tokens(turn)) - len(ahead._tokens(said))  # noqa: SLF001
        assert prefilled > 30 and ahead.evaluated - before - prefilled <= words + 2
    finally:
        plain.close()
        ahead.close()


async def test_a_prefill_of_the_callers_first_words_leaves_the_turn_less_to_evaluate(
        model_path) -> None:
    """The conversation and a draft of the caller's words are evaluated ahead of the turn:
    the turn evaluates only its last words, its sequence holds exactly the turn and its
    answer, and the answer begins as without. Only begins: the same tokens evaluated in
    other pieces round differently (IQ4_NL's rearranged products for four rows at a time,
    flash attention's cache cells), up to 0.8 apart in the next-token scores of a prompt
    here, so a greedy answer can part from the other after some words."""
    plain = BatchedLlamaChatModel(model_path, slots=2, flash_attention=False)
    ahead = BatchedLlamaChatModel(model_path, slots=2, flash_attention=False)
    try:
        question = "Do you take Blue Cross insurance for a cleaning next week?"
        turn = conversation(question)
        draft = [*turn[:-1], {"role": "user", "content": question.rsplit(" ", 4)[0]}]
        expected, _, _ = await collect(plain, turn)
        ahead.warm(turn[:-1])
        before = ahead.evaluated
        prefilled = await prefill(ahead, draft)
        said, _, _ = await collect(ahead, turn)
        assert said.split()[:5] == expected.split()[:5], (said, expected)
        prompt = ahead._tokens(turn)  # noqa: SLF001
        assert [s.tokens[:len(prompt)] for s in ahead.slots].count(prompt) == 1
        turn_tokens = len(ahead._tokens(turn)) - len(ahead._tokens(turn[:-1]))  # noqa: SLF001
        assert prefilled > 0 and ahead.evaluated - before - prefilled < turn_tokens - 3
        # a turn arriving meanwhile ends a prefill: nothing waits for one
        ahead.prefill([*draft[:-1], {"role": "user", "content": "Something else entirely"}])
        other, _, _ = await collect(ahead, conversation("What time do you open?"))
        assert other.strip() and not any(s.busy for s in ahead.slots)
    finally:
        plain.close()
        ahead.close()
