"""Copy a SQLite knowledge index into another index (PostgreSQL, typically) without embedding.

`switchboard index copy --from sqlite:///… --to postgresql://…` moves an existing index to
a shared one: every document with its chunks, their vectors as stored (bit for bit), their
pre-computed terms, the fingerprints that let the next sync skip unchanged documents, the
quarantine, and each source with its configuration, status and sync cursor. Nothing here
can embed: there is no embedder to call. A source's `last_sync` becomes the copy's time.
Into an empty index the copy is a bulk load (`bulk_load`: PostgreSQL builds its HNSW and
GIN indexes once, at the end, instead of row by row).
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from knowledge.documents import Chunk, Document
from knowledge.index import Flagged
from knowledge.indexes import KnowledgeIndex

BATCH_DOCUMENTS = 200


@dataclass(frozen=True)
class StoredDocument(Document):
    """A document as an index stored it: its text is gone, its fingerprint is kept."""

    stored_fingerprint: str = ""

    def fingerprint(self) -> str:
        return self.stored_fingerprint


@dataclass(frozen=True)
class Copied:
    sources: int
    documents: int
    chunks: int


def copy_index(path: str | Path, target: KnowledgeIndex, progress: Callable[[int], None] | None = None) -> Copied:
    """Copy the SQLite index file at `path` into `target` (which should be empty)."""
    db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        sources = db.execute("SELECT name, kind, config, status, error, failures, failed, cursor, checkpoint "
                             "FROM sources ORDER BY name").fetchall()
        for name, kind, config, *_ in sources:
            target.add_source(name, kind, json.loads(config))
        documents = chunks = 0
        with target.bulk_load() if not target.stats()["chunks"] else contextlib.nullcontext():
            for batch in _batches(db):
                for model, items, terms, flags in batch:
                    target.put(items, model, terms, flags)
                    documents += len(items)
                    chunks += sum(len(item[1]) for item in items)
                if progress:
                    progress(documents)
        for name, _, _, status, error, failures, failed, cursor, checkpoint in sources:
            target.set_status(name, status, error, failures, [tuple(f) for f in json.loads(failed or "[]")])
            if cursor is not None or checkpoint is not None:
                target.set_cursor(name, cursor, checkpoint)
        return Copied(len(sources), documents, chunks)
    finally:
        db.close()


def _batches(db: sqlite3.Connection) -> Iterator[list[tuple[str, list, list, list]]]:
    """`Index.put` arguments, `BATCH_DOCUMENTS` documents at a time, grouped by model."""
    keys = db.execute("SELECT source, id FROM documents ORDER BY source, id").fetchall()
    for i in range(0, len(keys), BATCH_DOCUMENTS):
        yield _read(db, keys[i:i + BATCH_DOCUMENTS])


def _read(db: sqlite3.Connection, keys: list[tuple[str, str]]) -> list[tuple[str, list, list, list]]:
    by_model: dict[str, tuple[list, list, list]] = {}
    for source, doc_id in keys:
        row = db.execute("SELECT title, url, updated_at, language, visibility, fingerprint, metadata, title_embedding "
                         "FROM documents WHERE source = ? AND id = ?", (source, doc_id)).fetchone()
        parts = db.execute(
            "SELECT c.id, c.ordinal, c.heading, c.text, c.hash, c.model, c.embedding, f.head, f.body FROM chunks c "
            "JOIN chunks_fts f ON f.rowid = c.rowid WHERE c.source = ? AND c.document_id = ? ORDER BY c.rowid",
            (source, doc_id)).fetchall()
        document = StoredDocument(id=doc_id, source=source, title=row[0], text="", url=row[1], updated_at=row[2],
                                  language=row[3], visibility=row[4], metadata=json.loads(row[6]),
                                  stored_fingerprint=row[5])
        title = None if row[7] is None else np.frombuffer(row[7], dtype=np.float32)
        models = Counter(p[5] for p in parts)
        model = models.most_common(1)[0][0] if models else _any_model(db)
        chunks = [Chunk(p[0], doc_id, source, p[1], p[2], p[3]) for p in parts]
        vectors = np.array([np.frombuffer(p[6], dtype=np.float32) for p in parts], dtype=np.float32)
        flags = [Flagged(*f) for f in db.execute(
            "SELECT source, document_id, kind, rule, snippet FROM quarantine WHERE source = ? AND document_id = ? "
            "ORDER BY rowid", (source, doc_id))]
        items, terms, flagged = by_model.setdefault(model, ([], [], []))
        items.append((document, chunks, [p[4] for p in parts], vectors, title))
        terms += [(p[7].split(), p[8].split()) for p in parts]
        flagged.append(flags)
    return [(model, *rest) for model, rest in by_model.items()]


def _any_model(db: sqlite3.Connection) -> str:
    row = db.execute("SELECT model FROM chunks LIMIT 1").fetchone()
    return row[0] if row else ""
