"""Answer quality of the embedded default on the sample knowledge base.

Asks every in-scope sample question (tests/data/sample_questions.jsonl: 30 English,
24 French, 6 Chinese, each with its relevant documents and a substring a correct answer
contains) and every out-of-scope question of ../shared/eval/clinc_oos through the real
engine (extractive answerer, support profile, public documents only), each in its own
conversation, and prints:
- in scope: share answered, false declines, share citing a relevant document, share
  whose answer contains the expected fact, share answered in the question's language;
- out of scope: share declined with the offer of a human (abstention);
- a follow-up check: "and for Belgium?"-style follow-ups answered from the right topic;
- time per answer, p50/p95.
The last line is one JSON object with every figure.

    python bench/answers.py [--eval-dir ../shared/eval] [--index PATH]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.answering import ExtractiveAnswerer  # noqa: E402
from bot.engine import Engine  # noqa: E402
from bot.evaluation import citation_ids  # noqa: E402
from bot.memory import InMemoryMemory  # noqa: E402
from bot.profiles import load_profiles  # noqa: E402
from bot.runtime import SAMPLE_DIR, SAMPLE_SOURCES  # noqa: E402
from bot.settings import DEFAULT_PROFILES  # noqa: E402
from bot.store import EventLog, connect  # noqa: E402
from bot.types import Message, User  # noqa: E402
from knowledge.connectors.folder import FolderConnector  # noqa: E402
from knowledge.embeddings import E5Embedder  # noqa: E402
from knowledge.index import Index  # noqa: E402
from knowledge.ingest import Ingestor  # noqa: E402
from knowledge.retrieval import Retriever  # noqa: E402

FOLLOW_UPS = [  # (first question, follow-up, a substring the follow-up's answer must contain)
    ("What are your delivery times?", "and for Belgium?", "Belgium"),
    ("Quels sont vos délais de livraison ?", "et pour la Suisse ?", "Suisse"),
    ("How much does shipping cost?", "what about Germany?", "Germany"),
    ("Combien coûte la livraison ?", "et en Italie ?", "Italie"),
]


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def normalized(text: str) -> str:
    return " ".join(text.lower().replace("\u202f", " ").replace("\xa0", " ").split())


def build_index(path: Path, embedder: E5Embedder) -> Index:
    fresh = not path.exists()
    index = Index(path)
    if fresh:
        for name, relative in SAMPLE_SOURCES:
            Ingestor(index, embedder).ingest(FolderConnector(SAMPLE_DIR / relative, name))
    return index


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def ask(engine: Engine, conversation: str, text: str):
    started = time.perf_counter()
    reply = await engine.handle(Message(conversation=conversation, text=text, user=User(id="bench"),
                                        channel="bench", private=False))
    return reply, time.perf_counter() - started


async def run(engine: Engine, in_scope: list[dict], out_of_scope: list[dict]) -> dict:
    times: list[float] = []
    answered = cited = correct = same_language = 0
    misses: list[str] = []
    for n, row in enumerate(in_scope):
        reply, seconds = await ask(engine, f"in:{n}", row["query"])
        times.append(seconds)
        answered += reply.answered
        cited += any(citation_ids(c) & set(row["relevant"]) for c in reply.citations)
        correct += reply.answered and normalized(row["expect"]) in normalized(reply.answer)
        same_language += reply.language == row["language"]
        if not reply.answered:
            misses.append(row["query"])
    declined = 0
    for n, row in enumerate(out_of_scope):
        reply, seconds = await ask(engine, f"oos:{n}", row["query"])
        times.append(seconds)
        declined += not reply.answered and any(a.kind == "handoff" for a in reply.actions)
    follow_ok = 0
    for n, (first, follow, expect) in enumerate(FOLLOW_UPS):
        await ask(engine, f"follow:{n}", first)
        reply, _ = await ask(engine, f"follow:{n}", follow)
        follow_ok += reply.answered and expect.lower() in reply.answer.lower()
    k = len(in_scope)
    return {
        "in_scope_n": k, "answered": round(answered / k, 3), "false_declines": round(1 - answered / k, 3),
        "cited_relevant": round(cited / k, 3), "expected_fact": round(correct / k, 3),
        "reply_language": round(same_language / k, 3),
        "out_of_scope_n": len(out_of_scope), "abstention": round(declined / len(out_of_scope), 3),
        "follow_ups": f"{follow_ok}/{len(FOLLOW_UPS)}",
        "answer_ms_p50": round(1000 * statistics.median(times), 1), "answer_ms_p95": round(1000 * percentile(times, 0.95), 1),
        "declined_in_scope": misses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval-dir", default=str(ROOT.parent / "shared" / "eval"))
    parser.add_argument("--index", default="", help="reuse (or build once at) this sample index path")
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory(prefix="switchboard-bench-")
    embedder = E5Embedder()
    started = time.perf_counter()
    index = build_index(Path(args.index or Path(scratch.name) / "index.sqlite3"), embedder)
    print(f"sample index ready in {time.perf_counter() - started:.1f} s: {index.stats()}")
    engine = Engine(memory=InMemoryMemory(), retriever=Retriever(index, embedder), answerer=ExtractiveAnswerer(),
                    profiles=load_profiles(DEFAULT_PROFILES),
                    events=EventLog(connect(f"sqlite:///{Path(scratch.name) / 'events.db'}")))
    in_scope = read(ROOT / "tests" / "data" / "sample_questions.jsonl")
    out_of_scope = read(Path(args.eval_dir) / "clinc_oos" / "queries.jsonl")
    figures = asyncio.run(run(engine, in_scope, out_of_scope))
    print(f"in scope ({figures['in_scope_n']}): answered {figures['answered']:.1%}  false declines "
          f"{figures['false_declines']:.1%}  cited relevant {figures['cited_relevant']:.1%}  expected fact "
          f"{figures['expected_fact']:.1%}  reply language {figures['reply_language']:.1%}")
    print(f"out of scope ({figures['out_of_scope_n']}, clinc_oos): declined + human offered {figures['abstention']:.1%}")
    print(f"follow-ups answered on topic: {figures['follow_ups']}")
    print(f"answer time: p50 {figures['answer_ms_p50']} ms, p95 {figures['answer_ms_p95']} ms")
    for question in figures["declined_in_scope"]:
        print(f"  declined in scope: {question}")
    index.close()
    scratch.cleanup()
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
