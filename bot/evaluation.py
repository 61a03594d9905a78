"""Answer evaluation: ask each question of the bot and count answers, declines and
citations of the relevant documents.

Each question is its own conversation, in memory, so questions don't leak into each
other. With a corpus, the bot answers from a throwaway index of it (source `eval`, the
default profile's persona, every source allowed); without, from the configured knowledge.
A relevant id matches a citation by document id, by `source/document id`, or by the
document id without its Q&A-form language suffix (`qa_form#key@fr` → `qa_form#key`).

Conversation evaluation (`evaluate_conversations`) replays multi-turn cases
(tests/data/conversations.jsonl, described in tests/data/README.md) through the same
engine, one conversation per case, and judges every turn by its `expect`: an answer
(answered, citing a relevant document, containing the fact, in the expected language),
a decline (not answered, a human offered), or small talk (a short reply quoting no page).
"""
from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from bot.engine import Engine
from bot.memory import InMemoryMemory
from bot.runtime import Runtime
from bot.settings import Settings
from bot.types import Citation, Message, Reply, User
from knowledge.evaluation import EvalDataError, JsonlCorpus
from knowledge.index import Index
from knowledge.ingest import Ingestor
from knowledge.retrieval import Retriever


def citation_ids(citation: Citation) -> set[str]:
    """The ids a relevant-document list may use for this citation."""
    doc = citation.document_id
    return {doc, f"{citation.source}/{doc}", doc.split("@")[0], f"{citation.source}/{doc.split('@')[0]}"}


async def evaluate_answers(settings: Settings, queries: list[dict], corpus: list[dict] | None = None,
                           profile: str = "") -> dict[str, Any]:
    """The shares answered / declined / citing a relevant document, and n."""
    async with _eval_engine(settings, corpus, profile) as engine:
        return await _ask_all(engine, queries, profile)


@asynccontextmanager
async def _eval_engine(settings: Settings, corpus: list[dict] | None, profile: str) -> AsyncIterator[Engine]:
    """An engine built from the Runtime's pieces (configured answerer), with memory in memory."""
    runtime = Runtime.open(dataclasses.replace(settings, load_sample=settings.load_sample and corpus is None))
    scratch = tempfile.TemporaryDirectory(prefix="switchboard-eval-")
    try:
        if corpus is None:
            runtime.load_sample()
            index, profiles = runtime.index, runtime.profiles
        else:
            index = Index(Path(scratch.name) / "index.sqlite3")
            Ingestor(index, runtime.embedder).ingest(JsonlCorpus(corpus))
            base = runtime.profiles.get(profile)
            profiles = dataclasses.replace(runtime.profiles, by_key={base.key: dataclasses.replace(base, sources=None)},
                                           default=base.key)
        yield Engine(memory=InMemoryMemory(), retriever=Retriever(index, runtime.embedder),
                     answerer=getattr(runtime.answerer, "inner", runtime.answerer),  # measured uncached
                     profiles=profiles, events=runtime.events)
    finally:
        await runtime.close()
        scratch.cleanup()


async def _ask_all(engine: Engine, queries: list[dict], profile: str) -> dict[str, Any]:
    answered = declined = judged = cited_relevant = 0
    for n, row in enumerate(queries):
        reply = await engine.handle(Message(conversation=f"eval:{n}", text=str(row["query"]),
                                            user=User(id="eval"), channel="eval", profile=profile))
        answered += reply.answered
        declined += not reply.answered
        if row.get("relevant"):
            judged += 1
            gold = set(map(str, row["relevant"]))
            cited_relevant += any(citation_ids(c) & gold for c in reply.citations)
    total = len(queries) or 1
    return {"answered": round(answered / total, 4), "declined": round(declined / total, 4),
            "cited_relevant": round(cited_relevant / judged, 4) if judged else None, "n": len(queries)}


# -- conversations ------------------------------------------------------------------------
CLASSES = ("in_scope", "follow_up", "off_topic_after", "uncovered", "cross_lingual", "smalltalk", "noise")
SPLITS = ("dev", "holdout")
SMALLTALK_CHARS = 400  # a greeting or "you're welcome", not a quoted page
MAX_TURN_CHARS = 100_000  # a generated filler turn; the engine itself refuses over 20,000


def check_cases(rows: list[dict], where: str = "cases") -> list[dict]:
    """The conversation cases, each checked; raises EvalDataError naming the first bad one."""
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise EvalDataError(f"{where}: case {n} is not a JSON object")
        at = f"{where}: case {row.get('id', n)}"
        if row.get("class") not in CLASSES:
            raise EvalDataError(f"{at}: unknown class {row.get('class')!r} (one of {', '.join(CLASSES)})")
        if row.get("split", "dev") not in SPLITS:
            raise EvalDataError(f"{at}: unknown split {row.get('split')!r} (dev or holdout)")
        if not isinstance(row.get("turns"), list) or not row["turns"]:
            raise EvalDataError(f"{at}: 'turns' must be a non-empty list")
        for k, turn in enumerate(row["turns"], 1):
            _check_turn(turn, f"{at}, turn {k}")
    return rows


def _check_turn(turn: Any, at: str) -> None:
    if not isinstance(turn, dict) or not isinstance(turn.get("expect"), dict):
        raise EvalDataError(f"{at}: a turn needs 'user' (or 'user_repeat' and 'times') and an 'expect' object")
    expect = turn["expect"]
    if not ("smalltalk" in expect or isinstance(expect.get("answered"), bool)):
        raise EvalDataError(f"{at}: 'expect' needs 'answered' (true or false) or 'smalltalk'")
    if isinstance(turn.get("user"), str):
        return
    times = turn.get("times")
    if not isinstance(turn.get("user_repeat"), str) or not isinstance(times, int) or times < 0 \
            or len(turn["user_repeat"]) * times > MAX_TURN_CHARS:
        raise EvalDataError(f"{at}: needs 'user' text, or 'user_repeat' text and 'times' "
                            f"(at most {MAX_TURN_CHARS} characters in all)")


def turn_text(turn: dict) -> str:
    """What the user sends: the text, or `user_repeat` repeated `times` (filler, kept small on disk)."""
    return turn["user"] if isinstance(turn.get("user"), str) else turn["user_repeat"] * turn["times"]


def judge(expect: dict, reply: Reply) -> str:
    """Why `reply` is not what `expect` describes; "" when it is."""
    if expect.get("smalltalk"):
        problem = _judge_smalltalk(reply)
    elif expect.get("answered"):
        problem = _judge_answer(expect, reply)
    else:
        problem = "" if not reply.answered and _offers_human(reply) else "not declined with a human offered"
    if not problem and expect.get("language") and reply.language != expect["language"]:
        problem = f"language {reply.language or '?'}, not {expect['language']}"
    return problem


def _judge_answer(expect: dict, reply: Reply) -> str:
    if not reply.answered:
        return "declined"
    gold = set(map(str, expect.get("relevant") or ()))
    if gold and not any(citation_ids(c) & gold for c in reply.citations):
        return "no relevant citation"
    fact = expect.get("fact")
    if fact and _normalized(fact) not in _normalized(reply.answer):
        return f"answer lacks {fact!r}"
    return ""


def _judge_smalltalk(reply: Reply) -> str:
    if reply.citations:
        return "cites a page"
    if _offers_human(reply):
        return "declined with a human offered"
    if not reply.answer.strip() or len(reply.answer) > SMALLTALK_CHARS:
        return "not a short reply"
    return ""


def _offers_human(reply: Reply) -> bool:
    return reply.handoff is not None or any(a.kind == "handoff" for a in reply.actions)


def _normalized(text: str) -> str:
    return " ".join(text.lower().replace("\u202f", " ").replace("\xa0", " ").replace("’", "'").split())


def _kind(expect: dict) -> str:
    return "smalltalk" if expect.get("smalltalk") else "answer" if expect.get("answered") else "decline"


async def evaluate_conversations(settings: Settings, cases: list[dict], split: str = "all",
                                 profile: str = "") -> dict[str, Any]:
    """Per-class shares of turns judged correct on the configured knowledge (see `run_conversations`)."""
    async with _eval_engine(settings, None, profile) as engine:
        return await run_conversations(engine, cases, split, profile)


async def run_conversations(engine: Engine, cases: list[dict], split: str = "all",
                            profile: str = "") -> dict[str, Any]:
    """Replays each case (of `split`: dev, holdout or all) in a fresh conversation and judges
    every turn: per class n, rate and rate by expected kind; overall; failures; turn times."""
    chosen = [c for c in check_cases(cases) if split == "all" or c.get("split", "dev") == split]
    verdicts: list[dict] = []
    seconds: list[float] = []
    for case in chosen:
        conversation = f"eval:{case['id']}:{uuid.uuid4().hex[:8]}"
        for n, turn in enumerate(case["turns"], 1):
            started = time.perf_counter()
            reply = await engine.handle(Message(conversation=conversation, text=turn_text(turn),
                                                user=User(id="eval"), channel="eval", profile=profile))
            seconds.append(time.perf_counter() - started)
            verdicts.append(_verdict(case, n, turn["expect"], reply))
    return _summary(verdicts, seconds, split, len(chosen))


def _verdict(case: dict, n: int, expect: dict, reply: Reply) -> dict:
    first = reply.citations[0] if reply.citations else None
    return {"case": case["id"], "class": case["class"], "turn": n, "kind": _kind(expect), "expected": expect,
            "problem": judge(expect, reply), "answered": reply.answered,
            "citation": f"{first.source}/{first.document_id}" if first else "", "language": reply.language,
            "answer": " ".join(reply.answer.split())[:120]}


def _rate(verdicts: list[dict]) -> float | None:
    return round(sum(not v["problem"] for v in verdicts) / len(verdicts), 4) if verdicts else None


def _summary(verdicts: list[dict], seconds: list[float], split: str, cases: int) -> dict[str, Any]:
    classes = {}
    for name in CLASSES:
        mine = [v for v in verdicts if v["class"] == name]
        if mine:
            kinds = sorted({v["kind"] for v in mine})
            classes[name] = {"n": len(mine), "rate": _rate(mine),
                             "by_kind": {k: _rate([v for v in mine if v["kind"] == k]) for k in kinds}}
    ordered = sorted(seconds)
    return {"split": split, "cases": cases, "turns": len(verdicts), "overall": _rate(verdicts), "classes": classes,
            "turn_ms_p50": round(1000 * statistics.median(ordered), 1) if ordered else None,
            "turn_ms_p95": round(1000 * ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1)
            if ordered else None,
            "failures": [{k: v[k] for k in ("case", "turn", "expected", "problem", "answered", "citation",
                                             "language", "answer")} for v in verdicts if v["problem"]]}
