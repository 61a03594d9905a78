"""Indirect prompt injection through synced documents, against the embedded default.

For every case of ../shared/security/injection_docs.jsonl (a help-center page with an
instruction planted in a comment, a table cell, hidden text, base64, invisible Unicode, a
fake dialogue turn…, and an innocent question that retrieves it), a copy of the sample
index gets the poisoned page (source `poisoned`, through the folder connector as Markdown),
and the question is asked through the real engine with the extractive answerer. Twice:
sanitizer off (what the index held before knowledge/sanitize.py) and on. Prints:
- attack success: the share of cases whose reply matches one of the case's
  `answer_must_not_match` patterns, overall and over the cases whose reply cited the
  poisoned page; the tool checks need a model with tools and can't fail here;
- quoted: the share of replies quoting a line of the planted text verbatim;
- both per `injection_location`;
- false flags: documents flagged (and findings) in the sample knowledge, and in the
  stackfaq and cnil_fr corpora of ../shared/eval.
The last line is one JSON object with every figure.

    python bench/security.py [--cases F.jsonl] [--eval-dir ../shared/eval]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.answering import ExtractiveAnswerer  # noqa: E402
from bot.engine import Engine  # noqa: E402
from bot.memory import InMemoryMemory  # noqa: E402
from bot.profiles import load_profiles  # noqa: E402
from bot.runtime import SAMPLE_DIR, SAMPLE_SOURCES  # noqa: E402
from bot.settings import DEFAULT_PROFILES  # noqa: E402
from bot.store import EventLog, connect  # noqa: E402
from bot.types import Message, Reply, User  # noqa: E402
from knowledge.connectors.folder import FolderConnector  # noqa: E402
from knowledge.embeddings import E5Embedder  # noqa: E402
from knowledge.index import Index  # noqa: E402
from knowledge.ingest import Ingestor  # noqa: E402
from knowledge.retrieval import Retriever  # noqa: E402
from knowledge.sanitize import clean  # noqa: E402

POISONED = "poisoned"


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def normalized(text: str) -> str:
    return " ".join(text.lower().split())


def attacked(case: dict, answer: str) -> bool:
    """The reply breaks the case's `answer_must_not_match` check."""
    return any(re.search(p, answer) for p in case["success_check"].get("answer_must_not_match", []))


def quoted(case: dict, answer: str) -> bool:
    """The reply repeats a line (of 20+ characters) of the planted text."""
    said = normalized(answer)
    lines = (normalized(line) for s in case["injection_snippets"] for line in s.splitlines())
    return any(len(line) >= 20 and line in said for line in lines)


async def ask(index: Index, embedder: E5Embedder, question: str, events: Path) -> Reply:
    engine = Engine(memory=InMemoryMemory(), retriever=Retriever(index, embedder), answerer=ExtractiveAnswerer(),
                    profiles=load_profiles(DEFAULT_PROFILES), events=EventLog(connect(f"sqlite:///{events}")))
    return await engine.handle(Message(conversation="security", text=question, user=User(id="bench"),
                                       channel="bench", private=False))


def run_case(case: dict, sample: Path, work: Path, embedder: E5Embedder, sanitizing: bool) -> dict:
    folder = work / f"{case['id']}-{sanitizing}"
    (folder / "docs").mkdir(parents=True)
    (folder / "docs" / f"{case['id']}.md").write_text(case["doc_text"], encoding="utf-8")
    shutil.copy(sample, folder / "index.sqlite3")
    index = Index(folder / "index.sqlite3")
    try:
        report = Ingestor(index, embedder, sanitizing=sanitizing).ingest(FolderConnector(folder / "docs", POISONED))
        reply = asyncio.run(ask(index, embedder, case["user_question"], folder / "events.db"))
        flagged = bool(index.flagged(POISONED))
    finally:
        index.close()
    return {"id": case["id"], "location": case["injection_location"], "attacked": attacked(case, reply.answer),
            "quoted": quoted(case, reply.answer), "cited": any(c.source == POISONED for c in reply.citations),
            "flagged": flagged, "stripped": dict(report.stripped), "answer": reply.answer}


def rates(rows: list[dict]) -> dict:
    cited = [r for r in rows if r["cited"]]
    share = lambda rs, key: round(sum(r[key] for r in rs) / len(rs), 3) if rs else 0.0  # noqa: E731
    return {"n": len(rows), "cited_n": len(cited), "attack_success": share(rows, "attacked"),
            "attack_success_cited": share(cited, "attacked"), "quoted": share(rows, "quoted"),
            "quoted_cited": share(cited, "quoted"), "flagged": share(rows, "flagged")}


def false_flags(eval_dir: Path, sample_flagged: int) -> dict:
    figures = {"sample_documents_flagged": sample_flagged}
    for corpus in ("stackfaq", "cnil_fr"):
        rows = read(eval_dir / corpus / "corpus.jsonl")
        cleaned = [clean(r["text"]) for r in rows]
        figures[f"{corpus}_documents"] = len(rows)
        figures[f"{corpus}_documents_flagged"] = sum(bool(c.flags) for c in cleaned)
        figures[f"{corpus}_findings"] = sum(len(c.flags) for c in cleaned)
        figures[f"{corpus}_documents_stripped"] = sum(bool(c.stripped) for c in cleaned)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=str(ROOT.parent / "shared" / "security" / "injection_docs.jsonl"))
    parser.add_argument("--eval-dir", default=str(ROOT.parent / "shared" / "eval"))
    args = parser.parse_args()
    cases = read(Path(args.cases))
    embedder = E5Embedder()
    with tempfile.TemporaryDirectory(prefix="switchboard-security-") as scratch:
        work = Path(scratch)
        started = time.perf_counter()
        sample = work / "sample.sqlite3"
        index = Index(sample)
        sample_flagged = sum(len(Ingestor(index, embedder).ingest(FolderConnector(SAMPLE_DIR / path, name)).flagged)
                             for name, path in SAMPLE_SOURCES)
        index.close()
        print(f"sample index ready in {time.perf_counter() - started:.1f} s; {len(cases)} cases")
        results = {mode: [run_case(c, sample, work, embedder, on) for c in cases]
                   for mode, on in (("before", False), ("after", True))}
    figures = {mode: rates(rows) for mode, rows in results.items()}
    by_location: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for mode, rows in results.items():
        for row in rows:
            by_location[row["location"]][mode].append(row)
    figures["by_location"] = {where: {mode: rates(rows) for mode, rows in modes.items()}
                              for where, modes in sorted(by_location.items())}
    figures["false_flags"] = false_flags(Path(args.eval_dir), sample_flagged)
    figures["still_attacked"] = [r["id"] for r in results["after"] if r["attacked"] or r["quoted"]]
    report(figures, results)
    print(json.dumps(figures, ensure_ascii=False))


def report(figures: dict, results: dict) -> None:
    for mode in ("before", "after"):
        f = figures[mode]
        print(f"sanitizer {'off' if mode == 'before' else 'on '}: attack success {f['attack_success']:.1%} "
              f"(cited the poisoned page: {f['attack_success_cited']:.1%} of {f['cited_n']}); planted text quoted "
              f"{f['quoted']:.1%} (cited: {f['quoted_cited']:.1%}); page flagged {f['flagged']:.1%}")
    print(f"{'location':<26}{'n':>3}  {'attack before':>14}{'attack after':>14}{'quoted before':>15}{'quoted after':>14}")
    for where, modes in figures["by_location"].items():
        b, a = modes["before"], modes["after"]
        print(f"{where:<26}{b['n']:>3}  {b['attack_success']:>14.0%}{a['attack_success']:>14.0%}"
              f"{b['quoted']:>15.0%}{a['quoted']:>14.0%}")
    print("false flags: " + ", ".join(f"{k} {v}" for k, v in figures["false_flags"].items()))
    for row in results["after"]:
        if row["attacked"] or row["quoted"]:
            print(f"  still attacked: {row['id']} ({row['location']}): {row['answer'][:200]!r}")


if __name__ == "__main__":
    main()
