"""The answer cache (bot/cache.py) on a replay of a development question set.

The set's corpus (../shared/eval/<set>/corpus.jsonl) is written as a folder of Markdown
pages and synced as a folder source. Then `--turns` questions are asked through the real
engine, each in a fresh conversation, with the LLM answerer behind the cache (SQLite
store) and a fake OpenAI-compatible LLM on 127.0.0.1 that answers after `--latency`
seconds by quoting the first sentence of passage [1] (so its answers pass the grounding
check and say which text they came from). Which question is asked follows real traffic:
the topic (a gold document) is drawn by a Zipf law over the documents (exponent `--zipf`,
in a random popularity order), the wording uniformly among the set's phrasings of it.
Every `--edit-every` turns the five most asked documents so far are edited (a word
inserted in every line) and the folder synced again.

Printed: hit rate (exact and by meaning), model calls saved, mean and p50 turn time on
hits and misses, and stale answers: answers whose quote is no longer in any current
passage of the document they cite (read from the index itself), among cached and fresh
answers (fresh ones measure the check: 0 expected; `--unchecked` switches the cache's
version check off, to show the stale answers it prevents). With `--calibrate`, the similarity
threshold: every pair of the set's questions whose best retrieved document is the same
(one bucket), scored by cosine, with the share of pairs above each threshold that have
the same gold document (precision) and the share of same-gold pairs found (recall).

    python bench/cache.py [--set stackfaq] [--turns 500] [--calibrate] [--work DIR]
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bot.accounting import Ledger  # noqa: E402
from bot.answering import GenerativeAnswerer  # noqa: E402
from bot.cache import AnswerCache, CachedAnswerer  # noqa: E402
from bot.cache_stores import SIMILARITY, SqliteCacheStore  # noqa: E402
from bot.engine import Engine  # noqa: E402
from bot.memory import InMemoryMemory  # noqa: E402
from bot.model import OpenAIChatModel  # noqa: E402
from bot.profiles import load_profiles  # noqa: E402
from bot.settings import DEFAULT_PROFILES  # noqa: E402
from bot.store import EventLog, connect  # noqa: E402
from bot.types import Message, User  # noqa: E402
from knowledge.embeddings import E5Embedder  # noqa: E402
from knowledge.index import Index  # noqa: E402
from knowledge.retrieval import Retriever  # noqa: E402
from knowledge.sync import Syncer  # noqa: E402
from tests.fakes.openai_server import ScriptedOpenAI, Step  # noqa: E402
from tests.fakes.server import serve  # noqa: E402

PASSAGE = re.compile(r"\[1\][^\n]*\n<<<\n(.*?)\n>>>", re.DOTALL)


def first_sentence(text: str) -> str:
    """The first sentence of a passage's first line of some length: what the fake LLM quotes."""
    line = next((l.strip() for l in text.splitlines() if len(l.split()) >= 4), text.strip())
    sentence = re.split(r"(?<=[.!?])\s", line, maxsplit=1)[0].rstrip(".!?:; ")
    return " ".join(sentence.split()[:30])


def quoting(body: dict) -> Step:
    found = PASSAGE.search(body["messages"][-1]["content"])
    return Step(text=f"{first_sentence(found.group(1))} [1]." if found else "NO_ANSWER")


def page(title: str, text: str, revision: int = 0) -> str:
    if revision:  # a word inserted after the first of every line: any earlier quote is no longer in it
        text = "\n".join(re.sub(r"^(\S+)", rf"\1 revised{revision}", l) if l.strip() else l for l in text.splitlines())
    return f"# {title}\n\n{text}\n"


def zipf_order(topics: list[str], exponent: float, rng: random.Random) -> tuple[list[str], list[float]]:
    order = topics[:]
    rng.shuffle(order)
    weights = [1 / (rank ** exponent) for rank in range(1, len(order) + 1)]
    return order, weights


def current_quotes(index_path: Path, document_id: str) -> str:
    with sqlite3.connect(index_path) as db:
        rows = db.execute("SELECT text FROM chunks WHERE document_id = ?", (document_id,)).fetchall()
    return " ".join(" ".join(r[0].split()) for r in rows)


def stale(reply, index_path: Path) -> bool:
    quote = " ".join(reply.answer.removesuffix(" [1].").split())
    return bool(reply.citations) and quote not in current_quotes(index_path, reply.citations[0].document_id)


async def replay(args, corpus: dict[str, dict], queries: list[dict], embedder, work: Path) -> dict:
    folder = work / "pages"
    folder.mkdir(exist_ok=True)
    for doc in corpus.values():
        (folder / f"{doc['id']}.md").write_text(page(doc["title"], doc["text"]))
    index = Index(work / "index.sqlite3")
    index.add_source(args.set, "folder", {"path": str(folder)})
    syncer = Syncer(index, embedder, {})
    started = time.perf_counter()
    syncer.sync(args.set)
    print(f"indexed {len(corpus)} pages in {time.perf_counter() - started:.0f} s")
    fake = ScriptedOpenAI(latency=args.latency, responder=quoting)
    ledger = Ledger()
    with serve(fake.app()) as url:
        model = OpenAIChatModel("fake", f"{url}/v1", "sk-bench", 30, max_retries=0)
        cache = AnswerCache(SqliteCacheStore(work / "cache.sqlite3", 86400, 10_000), index, embedder.query,
                            args.similarity, ledger)
        if args.unchecked:  # every document looks unchanged to the cache: shows what the version check prevents
            cache.versions.current = lambda source, document_id: "unchecked"
        events = EventLog(connect(f"sqlite:///{work / 'events.db'}"))
        profiles = load_profiles(DEFAULT_PROFILES)  # turns are given 120 s: a loaded machine is not the subject
        profiles = dataclasses.replace(profiles, by_key={k: dataclasses.replace(p, turn_deadline=120)
                                                         for k, p in profiles.by_key.items()})
        engine = Engine(memory=InMemoryMemory(), retriever=Retriever(index, embedder),
                        answerer=CachedAnswerer(GenerativeAnswerer(model), cache), profiles=profiles, events=events)
        by_topic = defaultdict(list)
        for q in queries:
            by_topic[q["relevant"][0]].append(q)
        rng = random.Random(args.seed)
        order, weights = zipf_order(sorted(by_topic), args.zipf, rng)
        asked: Counter[str] = Counter()
        revision: Counter[str] = Counter()
        times: dict[str, list[float]] = defaultdict(list)
        outcomes: Counter[str] = Counter()
        stale_cached = stale_fresh = answered = cited_gold = 0
        for n in range(args.turns):
            if n and n % args.edit_every == 0:
                for topic, _ in asked.most_common(5):
                    revision[topic] += 1
                    doc = corpus[topic]
                    (folder / f"{topic}.md").write_text(page(doc["title"], doc["text"], revision[topic]))
                syncer.sync(args.set)
            topic = rng.choices(order, weights)[0]
            asked[topic] += 1
            question = rng.choice(by_topic[topic])["query"]
            before = dict(ledger.cache)
            started = time.perf_counter()
            reply = await engine.handle(Message(conversation=f"web:bench{n}", text=question, user=User(id="u"),
                                                channel="web"))
            elapsed = time.perf_counter() - started
            outcome = next((k[1] for k, v in ledger.cache.items() if v != before.get(k, 0)), "none")
            outcomes[outcome] += 1
            times[outcome].append(elapsed)
            if reply.answered and reply.citations:
                answered += 1
                cited_gold += reply.citations[0].document_id == topic
                if stale(reply, work / "index.sqlite3"):
                    if outcome in ("hit", "similar"):
                        stale_cached += 1
                    else:
                        stale_fresh += 1
        engine.close()
        await cache.close()
        events.close()
    index.close()
    served = outcomes["hit"] + outcomes["similar"]
    return {"turns": args.turns, "outcomes": dict(outcomes), "hit_rate": round(served / args.turns, 3),
            "exact_hits": outcomes["hit"], "similar_hits": outcomes["similar"],
            "llm_calls": len(fake.requests), "llm_calls_saved": served,
            "llm_calls_saved_share": round(served / max(1, served + len(fake.requests)), 3),
            "answered": answered, "cited_gold": round(cited_gold / max(1, answered), 3),
            "edits": sum(revision.values()), "stale_cached": stale_cached, "stale_fresh": stale_fresh,
            "seconds": {k: {"mean": round(statistics.mean(v), 3), "p50": round(statistics.median(v), 3)}
                        for k, v in times.items() if v}}


def calibrate(corpus_queries: list[dict], index_path: Path, embedder) -> list[dict]:
    index = Index(index_path)
    retriever = Retriever(index, embedder)
    best, vectors = [], []
    for q in corpus_queries:
        hits = retriever.search(q["query"], k=1)
        best.append(hits[0].stored.chunk.document_id if hits else "")
        v = embedder.query(q["query"])
        vectors.append(v / np.linalg.norm(v))
    index.close()
    pairs = []
    for i, j in itertools.combinations(range(len(corpus_queries)), 2):
        if best[i] and best[i] == best[j] and corpus_queries[i]["query"] != corpus_queries[j]["query"]:
            same = bool(set(corpus_queries[i]["relevant"]) & set(corpus_queries[j]["relevant"]))
            pairs.append((float(vectors[i] @ vectors[j]), same))
    positives = sum(s for _, s in pairs)
    rows = []
    for threshold in (0.90, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97):
        above = [s for c, s in pairs if c >= threshold]
        rows.append({"threshold": threshold, "pairs_above": len(above),
                     "precision": round(sum(above) / max(1, len(above)), 3),
                     "recall": round(sum(above) / max(1, positives), 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval-dir", default=str(ROOT.parent / "shared" / "eval"))
    parser.add_argument("--set", default="stackfaq")
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--edit-every", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.3, help="seconds the fake LLM takes per answer")
    parser.add_argument("--similarity", type=float, default=SIMILARITY)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--unchecked", action="store_true",
                        help="switch the cache's version check off, to see the stale answers it prevents")
    parser.add_argument("--work", default="", help="keep the folder and index here, reused next time")
    args = parser.parse_args()
    folder = Path(args.eval_dir) / args.set
    corpus = {d["id"]: d for d in map(json.loads, (folder / "corpus.jsonl").read_text().splitlines())}
    queries = [q for q in map(json.loads, (folder / "queries.jsonl").read_text().splitlines())
               if q.get("relevant") and q["relevant"][0] in corpus]
    embedder = E5Embedder()
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for stale_file in ("cache.sqlite3", "events.db"):  # a kept index is reused; the cache starts empty
            for path in work.glob(f"{stale_file}*"):
                path.unlink()
        result = asyncio.run(replay(args, corpus, queries, embedder, work))
        if args.calibrate:
            result["calibration"] = calibrate(queries, work / "index.sqlite3", embedder)
            for row in result["calibration"]:
                print(f"  cosine >= {row['threshold']:.2f}: {row['pairs_above']:5d} same-bucket pairs, "
                      f"precision {row['precision']:.3f}, recall {row['recall']:.3f}")
    print(f"{args.set}: {args.turns} turns, Zipf {args.zipf}, edits every {args.edit_every} turns "
          f"({result['edits']} page edits), similarity {args.similarity}")
    print(f"  hit rate {result['hit_rate']:.1%} (exact {result['exact_hits']}, by meaning {result['similar_hits']}); "
          f"LLM calls {result['llm_calls']}, saved {result['llm_calls_saved']} "
          f"({result['llm_calls_saved_share']:.1%})")
    for outcome, figures in sorted(result["seconds"].items()):
        print(f"  {outcome:8s} mean {figures['mean'] * 1000:6.0f} ms  p50 {figures['p50'] * 1000:6.0f} ms")
    print(f"  answered {result['answered']}, citing the gold page {result['cited_gold']:.1%}; stale answers: "
          f"cached {result['stale_cached']}, fresh {result['stale_fresh']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
