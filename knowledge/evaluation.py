"""Retrieval evaluation on a user's own data: recall@1, recall@5 and MRR@10.

The corpus (`{id, title, text}` JSON lines) is indexed in a throwaway index (an SQLite file
in a temp folder, or with `index_url` a new schema in that PostgreSQL, dropped after); each query
(`{query, relevant: [id, ...]}`) is searched and the gold documents are looked for among
the documents of the retrieved chunks.
"""
from __future__ import annotations

import json
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from knowledge.documents import Document, Failure
from knowledge.embeddings import Embedder
from knowledge import index_pg_schema
from knowledge.index import Index
from knowledge.indexes import KnowledgeIndex, is_postgres
from knowledge.ingest import Ingestor, Progress
from knowledge.language import detect
from knowledge.retrieval import Retriever, documents_in_order


class EvalDataError(Exception):
    """Raised when an evaluation file is missing or not JSON lines of the expected shape."""


def read_jsonl(path: str | Path, required: tuple[str, ...]) -> list[dict]:
    """Rows of a JSON-lines file, each checked for the `required` keys."""
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"cannot read {path}: {exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalDataError(f"{path}:{n}: not JSON ({exc.msg})") from exc
        missing = [k for k in required if k not in row]
        if missing:
            raise EvalDataError(f"{path}:{n}: missing {', '.join(missing)}")
        rows.append(row)
    return rows


class JsonlCorpus:
    """A corpus file as a connector (source `eval`)."""

    kind = "jsonl"
    source = "eval"

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def config(self) -> dict:
        return {}

    def load(self) -> Iterator[Document | Failure]:
        for row in self.rows:
            text = str(row.get("text") or "")
            title = str(row.get("title") or "")
            language = detect(f"{title} {text[:500]}")[0] or "en"
            yield Document(id=str(row["id"]), source=self.source, title=title, text=text, language=language)


@dataclass(frozen=True)
class Scores:
    recall_at_1: float
    recall_at_5: float
    mrr_at_10: float
    n: int

    def to_dict(self) -> dict:
        return {"recall@1": round(self.recall_at_1, 4), "recall@5": round(self.recall_at_5, 4),
                "mrr@10": round(self.mrr_at_10, 4), "n": self.n}


def score(rankings: list[list[str]], golds: list[set[str]]) -> Scores:
    """Document-level metrics of ranked id lists against gold id sets."""
    r1 = r5 = mrr = 0.0
    for ranking, gold in zip(rankings, golds):
        first = next((i for i, doc in enumerate(ranking[:10]) if doc in gold), None)
        r1 += first == 0
        r5 += first is not None and first < 5
        mrr += 1.0 / (first + 1) if first is not None else 0.0
    n = len(golds) or 1
    return Scores(r1 / n, r5 / n, mrr / n, len(golds))


class RetrievalEval:
    """Indexes a corpus once, then scores query sets in any mode."""

    def __init__(self, corpus: list[dict], embedder: Embedder, progress: Progress | None = None,
                 index_url: str = ""):
        self._dir = tempfile.TemporaryDirectory(prefix="switchboard-eval-")
        self._schema = f"eval_{uuid.uuid4().hex[:12]}" if index_url and is_postgres(index_url) else ""
        self._url = index_url
        self.index = self._open()
        try:
            Ingestor(self.index, embedder).ingest(JsonlCorpus(corpus), progress)
        except BaseException:
            self.close()
            raise
        self.retriever = Retriever(self.index, embedder)

    def _open(self) -> KnowledgeIndex:
        if not self._schema:
            return Index(Path(self._dir.name) / "index.sqlite3")
        from knowledge.index_pg import PgIndex

        index_pg_schema.migrate(self._url, self._schema)
        return PgIndex(self._url, self._schema)

    def run(self, queries: list[dict], mode: str = "hybrid") -> Scores:
        rankings = [documents_in_order(self.retriever.search(str(q["query"]), k=30, mode=mode)) for q in queries]
        return score(rankings, [set(map(str, q["relevant"])) for q in queries])

    def close(self) -> None:
        self.index.close()
        if self._schema:
            index_pg_schema.drop(self._url, self._schema)
        self._dir.cleanup()
