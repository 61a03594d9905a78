"""Answer evaluation: ask each question of the bot and count answers, declines and
citations of the relevant documents.

Each question is its own conversation, in memory, so questions don't leak into each
other. With a corpus, the bot answers from a throwaway index of it (source `eval`, the
default profile's persona, every source allowed); without, from the configured knowledge.
A relevant id matches a citation by document id, by `source/document id`, or by the
document id without its Q&A-form language suffix (`qa_form#key@fr` → `qa_form#key`).
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from bot.engine import Engine
from bot.memory import InMemoryMemory
from bot.runtime import Runtime
from bot.settings import Settings
from bot.types import Citation, Message, User
from knowledge.evaluation import JsonlCorpus
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
        engine = Engine(memory=InMemoryMemory(), retriever=Retriever(index, runtime.embedder),
                        answerer=runtime.answerer, profiles=profiles, events=runtime.events)
        return await _ask_all(engine, queries, profile)
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
