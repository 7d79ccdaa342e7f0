"""``switchboard eval answers``: are the agent's answers right, from what it knows?

Each question of ``answer_questions`` goes through the agent's answering path as text —
the misheard check, the knowledge match, the model with its clauses checked, the fallback —
with a real language model, and is scored by rules that do not look at how the answer was
made. ``--baseline`` also asks the model alone (same prompt, same sentence limit), to show
what the answering rules add. Written numbers: pass rate, invented facts, identity
confusions, answers cut mid-sentence, time to the first clause.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import appliance.bench.answer_final  # noqa: F401  (registers the final held-out sets)
from agent.answers.clauses import ClauseGate, gated
from agent.answers.guard import FactGuard
from agent.answers.policy import Answerer
from agent.settings import AgentSpec
from agent.speech.batched_llama import BatchedLlamaChatModel
from agent.speech.chat_model import ChatModel, Message
from appliance.bench import answer_heldout  # noqa: F401  (registers the held-out sets)
from appliance.bench.answer_questions import SETS, Question, QuestionSet, score


def set_spec(qset: QuestionSet) -> AgentSpec:
    """The business as an agent, built the way the control plane builds one."""
    from appliance.config.agent import AgentConfig, AnswerConfig
    from appliance.daemon_settings import agent_spec

    config = AgentConfig(name=qset.name, greeting=qset.greeting,
                         instructions=qset.instructions, knowledge=qset.knowledge,
                         answers=[AnswerConfig(questions=list(q), answer=a)
                                  for q, a in qset.answers])
    return agent_spec(config, None)


async def agent_answer(spec: AgentSpec, answers: Answerer | None, chat: ChatModel,
                       history: list[Message], said: str) -> tuple[str, str, float | None]:
    """(answer, how it was made, seconds to the first clause) — the dialogue's path as text;
    ``answers`` None: the model alone."""
    began = time.perf_counter()
    if answers is not None:
        heard = answers.hear(said, None)
        if heard is not None and heard.say:
            return heard.say, heard.step.value, None
        plan = answers.answer(said)
        if plan.say:
            return plan.say, plan.step.value, None
    guard = FactGuard(spec.guard_sources, history) if answers is not None else None
    gate = ClauseGate(guard.allows if guard else None)
    clauses, first = [], None
    async for clause in gated(chat.stream(list(history)), gate):
        first = first if first is not None else time.perf_counter() - began
        clauses.append(clause)
    if answers is not None and gate.refused:
        then = plan.fallback or answers.refused().say
        return " ".join([*clauses, then]), "refused+" + ("fact" if plan.fallback else
                                                         "unknown"), first
    route = "model" if answers is None else plan.step.value
    return " ".join(clauses), route + ("+cut" if gate.refused else ""), first


async def run_question(spec: AgentSpec, chat: ChatModel, item: Question,
                       grounded: bool, knowledge: str) -> dict:
    answers = Answerer(spec.knowledge_index, spec.answer_phrases, can_transfer=True,
                       model_phrases=spec.model_phrases_facts) if grounded else None
    history: list[Message] = [Message(role="system", content=spec.instructions),
                              Message(role="assistant", content=spec.greeting)]
    answer, route, first = "", "", None
    for said in item.turns:
        history.append(Message(role="user", content=said))
        answer, route, first = await agent_answer(spec, answers, chat, history, said)
        history.append(Message(role="assistant", content=answer))
    return {"id": item.id, "kind": item.kind, "answer": answer, "route": route,
            "first_clause_ms": None if first is None else round(first * 1000),
            **score(item, answer, knowledge)}


def summarize(results: list[dict]) -> dict:
    firsts = [r["first_clause_ms"] for r in results if r["first_clause_ms"] is not None]
    return {"questions": len(results), "passed": sum(r["ok"] for r in results),
            "invented": sum(bool(r["invented"]) for r in results),
            "identity": sum(r["identity"] for r in results),
            "cut": sum(r["cut"] for r in results),
            "model_answers": len(firsts),
            "first_clause_ms_p50": round(statistics.median(firsts)) if firsts else None}


async def evaluate(model_path: Path, qset: QuestionSet, baseline: bool,
                   model_phrases: bool = False) -> dict:
    spec = dataclasses.replace(set_spec(qset), model_phrases_facts=model_phrases)
    chat = BatchedLlamaChatModel(model_path)
    chat.warm([{"role": "system", "content": spec.instructions},
               {"role": "assistant", "content": spec.greeting}])
    report: dict = {"model": model_path.name, "set": qset.name,
                    "model_phrases_facts": model_phrases}
    for mode, grounded in (("agent", True), ("model_alone", False))[: 2 if baseline else 1]:
        results = [await run_question(spec, chat, item, grounded, qset.knowledge)
                   for item in qset.questions]
        report[mode] = {"summary": summarize(results), "results": results}
    return report


def format_report(report: dict) -> str:
    lines = [f"model {report['model']}  questions {report['set']}"]
    for mode in ("agent", "model_alone"):
        if mode not in report:
            continue
        s = report[mode]["summary"]
        lines.append(f"  {mode:12} passed {s['passed']}/{s['questions']}  invented "
                     f"{s['invented']}  identity {s['identity']}  cut {s['cut']}  "
                     f"first clause p50 {s['first_clause_ms_p50']} ms "
                     f"({s['model_answers']} model answers)")
        for r in report[mode]["results"]:
            if not r["ok"]:
                why = [k for k in ("wrong", "identity", "cut") if r[k]]
                why += ["facts missing"] if not r["facts"] else []
                why += [f"invented {r['invented']}"] if r["invented"] else []
                lines.append(f"    FAIL {r['id']:16} [{r['route']}] {', '.join(why)}: "
                             f"{r['answer'][:90]!r}")
    return "\n".join(lines)


def cli_main(models: list[str], data_dir: Path, json_path: Path | None,
             baseline: bool, model_phrases: bool = False, sets: list[str] | None = None
             ) -> int:
    from appliance.models.store import ModelError, ModelStore

    store = ModelStore(data_dir / "models")
    reports = []
    for name in models:
        try:
            path = Path(name) if Path(name).is_file() else store.path(name, "llm")
        except ModelError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        for name_of_set in sets or list(SETS):
            report = asyncio.run(evaluate(path, SETS[name_of_set], baseline, model_phrases))
            print(format_report(report), flush=True)
            reports.append(report)
    if json_path:
        json_path.write_text(json.dumps(reports, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0
