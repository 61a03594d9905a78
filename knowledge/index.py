"""The knowledge index: one SQLite file holding sources, documents, chunks, an FTS5
table of their terms (BM25) and their embeddings.

Readers are many (every web worker), the writer is one at a time (ingest or the sync
worker): WAL mode lets them run side by side. The dense side is served from an in-memory
matrix (`DenseView`) rebuilt when the index's `generation` counter moves, which every
write bumps; a query costs one cheap SELECT to check it.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from knowledge.documents import Chunk, Document
from knowledge.stripped import STRIPPED_LIKE, Stripped, from_rows

SCHEMA = """
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
  name TEXT PRIMARY KEY, kind TEXT NOT NULL, config TEXT NOT NULL DEFAULT '{}',
  status TEXT NOT NULL DEFAULT 'new', error TEXT, documents INTEGER NOT NULL DEFAULT 0,
  chunks INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, last_sync REAL,
  cursor REAL, checkpoint TEXT, lease_owner TEXT, lease_until REAL, failed TEXT);
CREATE TABLE IF NOT EXISTS documents (
  source TEXT NOT NULL, id TEXT NOT NULL, title TEXT NOT NULL, url TEXT NOT NULL,
  updated_at TEXT, language TEXT NOT NULL, visibility TEXT NOT NULL, fingerprint TEXT NOT NULL,
  metadata TEXT NOT NULL, title_hash TEXT NOT NULL, title_embedding BLOB, PRIMARY KEY (source, id));
CREATE INDEX IF NOT EXISTS documents_by_title_hash ON documents (title_hash);
CREATE TABLE IF NOT EXISTS chunks (
  rowid INTEGER PRIMARY KEY, source TEXT NOT NULL, document_id TEXT NOT NULL, id TEXT NOT NULL,
  ordinal INTEGER NOT NULL, heading TEXT NOT NULL, text TEXT NOT NULL, visibility TEXT NOT NULL,
  hash TEXT NOT NULL, model TEXT NOT NULL, embedding BLOB NOT NULL, UNIQUE (source, id));
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (source, document_id);
CREATE INDEX IF NOT EXISTS chunks_by_hash ON chunks (hash, model);
-- Two fields: `head` (document title and heading path) and `body` (the chunk's text).
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(head, body, tokenize='unicode61 remove_diacritics 0');
-- Documents in quarantine: an instruction to an AI was found in them (knowledge/sanitize.py). Their
-- clean remainder stays indexed; each row says where the instruction was, the rule, the snippet.
CREATE TABLE IF NOT EXISTS quarantine (
  source TEXT NOT NULL, document_id TEXT NOT NULL, kind TEXT NOT NULL, rule TEXT NOT NULL, snippet TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS quarantine_by_document ON quarantine (source, document_id);
-- Every indexed term with the number of chunks holding it (spelling correction, known words).
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vocab USING fts5vocab(chunks_fts, row);
"""
# bm25() weights of (head, body). FTS5 adds up the weighted term counts of a row's fields, so a
# term in the title counts twice: a title says what the whole document is about (in an FAQ it
# is the question itself), while the body's words are also about details.
FTS_WEIGHTS = (2.0, 1.0)
FAILED_KEPT = 50  # a source's failed documents named in its status (the count covers all)


@dataclass(frozen=True)
class SourceInfo:
    """A knowledge source and its sync status (`new`, `processing`, `success`, `failed`)."""

    name: str
    kind: str
    config: dict[str, Any]
    status: str
    error: str | None
    documents: int
    chunks: int
    failures: int
    last_sync: float | None
    cursor: float | None = None  # when the last complete sync began: the next poll asks for changes since
    checkpoint: str | None = None  # a connector's own resume token (e.g. Drive's changes page token)
    failed: tuple[tuple[str, str], ...] = ()  # (document id, why) of the first failures of the last pass


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as read back for an answer, with its document's citation fields."""

    rowid: int
    chunk: Chunk
    title: str
    url: str
    updated_at: str | None
    language: str
    visibility: str


@dataclass(frozen=True)
class Flagged:
    """A document held for review: an instruction to an AI was removed from it at ingest."""

    source: str
    document_id: str
    kind: str  # `instruction` (visible text) or the hidden kind it hid in (`html_comment`, `base64`…)
    rule: str
    snippet: str


@dataclass(frozen=True)
class DenseView:
    """The embeddings of every chunk, row-aligned with their rowid, source and visibility."""

    generation: int
    rowids: np.ndarray
    sources: np.ndarray
    public: np.ndarray
    matrix: np.ndarray
    languages: np.ndarray  # each row's document language (knowledge/crosslingual.py centres by it)
    partial: bool = False  # only a query's candidates (an approximate search), not every chunk


def title_hash(title: str, model: str) -> str:
    """Identifies a title's embedding, for reuse across documents and re-ingests."""
    return hashlib.sha256(f"title\x1f{model}\x1f{title}".encode()).hexdigest()


class IndexOpenError(Exception):
    """Raised when the index file cannot be opened or is not a Switchboard index."""


class Index:
    """The SQLite knowledge index. Safe to share between threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise IndexOpenError(f"cannot open the knowledge index {self.path}: {exc}") from exc
        self._lock = threading.RLock()
        self._dense: DenseView | None = None
        self._vocabulary: tuple[int, dict[str, int]] | None = None
        self._check_schema()

    def _check_schema(self) -> None:
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(documents)")}
        fields = {r[1] for r in self._db.execute("PRAGMA table_info(chunks_fts)")}
        if "title_embedding" not in columns or "head" not in fields:
            raise IndexOpenError(f"{self.path} was built by an older Switchboard: delete it and ingest again "
                                 "(the sample knowledge reloads by itself)")
        have = {r[1] for r in self._db.execute("PRAGMA table_info(sources)")}
        for column, kind in (("cursor", "REAL"), ("checkpoint", "TEXT"), ("lease_owner", "TEXT"),
                             ("lease_until", "REAL"), ("failed", "TEXT")):
            if column not in have:  # an index from before incremental sync: add the column
                self._db.execute(f"ALTER TABLE sources ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """As `PgIndex.bulk_load`; SQLite's indexes are cheap to keep up row by row."""
        yield

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute(
                    "INSERT INTO meta VALUES ('generation', '1') "
                    "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def generation(self) -> int:
        rows = self._rows("SELECT value FROM meta WHERE key = 'generation'")
        return int(rows[0][0]) if rows else 0

    # -- sources ---------------------------------------------------------------------
    def add_source(self, name: str, kind: str, config: dict[str, Any]) -> None:
        with self._write() as db:
            # settings the connector reports are merged into what `sources add` stored (an interval, say)
            db.execute("INSERT INTO sources (name, kind, config) VALUES (?, ?, ?) "
                       "ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, "
                       "config = json_patch(config, excluded.config)", (name, kind, json.dumps(config)))

    def remove_source(self, name: str) -> int:
        """Forget a source and everything indexed from it; returns the documents removed."""
        removed = self.remove(name, self.document_ids(name))
        with self._write() as db:
            db.execute("DELETE FROM sources WHERE name = ?", (name,))
        return removed

    def set_cursor(self, name: str, cursor: float, checkpoint: str | None = None) -> None:
        with self._write() as db:
            db.execute("UPDATE sources SET cursor = ?, checkpoint = ? WHERE name = ?", (cursor, checkpoint, name))

    def lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take (or extend) the right to sync `name` for `ttl` seconds: one conditional UPDATE,
        so two processes sharing this index file never sync one source at once."""
        now = time.time()
        with self._lock:
            return self._db.execute(
                "UPDATE sources SET lease_owner = ?, lease_until = ? WHERE name = ? AND "
                "(lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
                (owner, now + ttl, name, owner, now)).rowcount == 1

    def release(self, name: str, owner: str) -> None:
        with self._lock:
            self._db.execute("UPDATE sources SET lease_owner = NULL, lease_until = NULL "
                             "WHERE name = ? AND lease_owner = ?", (name, owner))

    def set_status(self, name: str, status: str, error: str | None = None, failures: int = 0,
                   failed: Sequence[tuple[str, str]] = ()) -> None:
        """`failures` counts the documents that could not be read; `failed` names the first
        ones (id, why), kept so `switchboard sources` can say which."""
        with self._write() as db:
            counts = db.execute(
                "SELECT (SELECT COUNT(*) FROM documents WHERE source = ?), "
                "(SELECT COUNT(*) FROM chunks WHERE source = ?)", (name, name)).fetchone()
            synced = time.time() if status in ("success", "failed") else None
            db.execute("UPDATE sources SET status = ?, error = ?, documents = ?, chunks = ?, failures = ?, "
                       "failed = ?, last_sync = COALESCE(?, last_sync) WHERE name = ?",
                       (status, error, counts[0], counts[1], failures,
                        json.dumps([list(f) for f in failed[:FAILED_KEPT]]), synced, name))

    def sources(self) -> list[SourceInfo]:
        rows = self._rows("SELECT name, kind, config, status, error, documents, chunks, failures, last_sync, "
                          "cursor, checkpoint, failed FROM sources ORDER BY name")
        return [SourceInfo(r[0], r[1], json.loads(r[2]), *r[3:11], tuple(map(tuple, json.loads(r[11] or "[]"))))
                for r in rows]

    def source(self, name: str) -> SourceInfo | None:
        return next((s for s in self.sources() if s.name == name), None)

    # -- documents -------------------------------------------------------------------
    def fingerprints(self, source: str) -> dict[str, str]:
        return dict(self._rows("SELECT id, fingerprint FROM documents WHERE source = ?", (source,)))

    def cached_vectors(self, hashes: Iterable[str], model: str) -> dict[str, np.ndarray]:
        """Vectors already computed for these chunk or title hashes (batched lookups)."""
        found: dict[str, np.ndarray] = {}
        wanted = list(set(hashes))
        for i in range(0, len(wanted), 500):
            batch = wanted[i:i + 500]
            marks = ",".join("?" * len(batch))
            for h, blob in self._rows(f"SELECT hash, embedding FROM chunks WHERE model = ? AND hash IN ({marks})",
                                      (model, *batch)):
                found.setdefault(h, np.frombuffer(blob, dtype=np.float32))
            rest = [h for h in batch if h not in found]
            if rest:
                marks = ",".join("?" * len(rest))
                for h, blob in self._rows(f"SELECT title_hash, title_embedding FROM documents WHERE title_embedding "
                                          f"IS NOT NULL AND title_hash IN ({marks})", rest):
                    found.setdefault(h, np.frombuffer(blob, dtype=np.float32))
        return found

    def put(self, items: Sequence[tuple[Document, Sequence[Chunk], Sequence[str], np.ndarray, np.ndarray | None]],
            model: str, terms: Sequence[tuple[Sequence[str], Sequence[str]]],
            flags: Sequence[Sequence[Any]] = ()) -> None:
        """Replace each document with its chunks (hashes, vectors and index terms aligned).

        An item is (document, chunks, chunk hashes, chunk vectors, title vector or None).
        `terms` holds one (head, body) pair of term lists per chunk, in order (`lexical.chunk_terms`).
        `flags` holds, per item, why it is in quarantine (objects with kind, rule, snippet; empty: it isn't).
        """
        flat_terms = iter(terms)
        with self._write() as db:
            for n, (document, chunks, hashes, vectors, title_vector) in enumerate(items):
                self._delete(db, document.source, [document.id])
                db.executemany("INSERT INTO quarantine VALUES (?, ?, ?, ?, ?)",
                               [(document.source, document.id, f.kind, f.rule, f.snippet)
                                for f in (flags[n] if n < len(flags) else ())])
                title_blob = None if title_vector is None else np.asarray(title_vector, dtype=np.float32).tobytes()
                db.execute("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (
                    document.source, document.id, document.title, document.url, document.updated_at,
                    document.language, document.visibility, document.fingerprint(),
                    json.dumps(dict(document.metadata), default=str), title_hash(document.title, model), title_blob))
                for chunk, digest, vector in zip(chunks, hashes, vectors):
                    cur = db.execute(
                        "INSERT INTO chunks (source, document_id, id, ordinal, heading, text, visibility, hash, "
                        "model, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (chunk.source, chunk.document_id, chunk.id, chunk.ordinal, chunk.heading, chunk.text,
                         document.visibility, digest, model, np.asarray(vector, dtype=np.float32).tobytes()))
                    head, body = next(flat_terms)
                    db.execute("INSERT INTO chunks_fts (rowid, head, body) VALUES (?, ?, ?)",
                               (cur.lastrowid, " ".join(head), " ".join(body)))

    def remove(self, source: str, document_ids: Iterable[str]) -> int:
        ids = list(document_ids)
        if not ids:
            return 0
        with self._write() as db:
            return self._delete(db, source, ids)

    @staticmethod
    def _delete(db: sqlite3.Connection, source: str, ids: list[str]) -> int:
        removed = 0
        for doc_id in ids:
            rowids = [r[0] for r in db.execute(
                "SELECT rowid FROM chunks WHERE source = ? AND document_id = ?", (source, doc_id))]
            db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(r,) for r in rowids])
            db.execute("DELETE FROM chunks WHERE source = ? AND document_id = ?", (source, doc_id))
            db.execute("DELETE FROM quarantine WHERE source = ? AND document_id = ?", (source, doc_id))
            removed += db.execute("DELETE FROM documents WHERE source = ? AND id = ?", (source, doc_id)).rowcount
        return removed

    def document_ids(self, source: str) -> set[str]:
        return {r[0] for r in self._rows("SELECT id FROM documents WHERE source = ?", (source,))}

    def flagged(self, source: str | None = None) -> list[Flagged]:
        """The findings of the documents in quarantine (of one source, or all), by document."""
        where, params = ("WHERE source = ?", (source,)) if source is not None else ("", ())
        return [Flagged(*r) for r in self._rows(
            f"SELECT source, document_id, kind, rule, snippet FROM quarantine {where} ORDER BY source, document_id, rowid",
            params)]

    def stripped(self, source: str | None = None) -> list[Stripped]:
        """The documents (of one source, or all) the sanitizer stripped something from, by source and id."""
        where, params = ((" AND source = ?", (STRIPPED_LIKE, source)) if source is not None
                         else ("", (STRIPPED_LIKE,)))
        return from_rows(self._rows(
            f"SELECT source, id, title, metadata FROM documents WHERE metadata LIKE ?{where} ORDER BY source, id", params))

    # -- search ----------------------------------------------------------------------
    def lexical(self, query_terms: Sequence[str], sources: Sequence[str] | None, public_only: bool,
                limit: int) -> list[tuple[int, float]]:
        """BM25 over the chunk terms: (rowid, score) best first, score higher is better."""
        unique = list(dict.fromkeys(t for t in query_terms if t))
        if not unique:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in unique)
        where, params = self._filters(sources, public_only)
        bm25 = f"bm25(chunks_fts, {', '.join(map(str, FTS_WEIGHTS))})"
        sql = (f"SELECT chunks_fts.rowid, -{bm25} FROM chunks_fts "
               "JOIN chunks ON chunks.rowid = chunks_fts.rowid "
               f"WHERE chunks_fts MATCH ? {where} ORDER BY {bm25} LIMIT ?")
        return [(r[0], r[1]) for r in self._rows(sql, [match, *params, limit])]

    @staticmethod
    def _filters(sources: Sequence[str] | None, public_only: bool) -> tuple[str, list[Any]]:
        where, params = "", []
        if sources is not None:
            where += f" AND chunks.source IN ({','.join('?' * len(sources))})"
            params += list(sources)
        if public_only:
            where += " AND chunks.visibility = 'public'"
        return where, params

    def dense_view(self) -> DenseView:
        """Each chunk's row is the mean of its vector and its document's title vector, so a
        query scores the mean of the two cosines: the title says what the whole document is
        about, which a passage cut from its middle may not (measured in bench/retrieval.py)."""
        generation = self.generation()
        view = self._dense
        if view is None or view.generation != generation:
            view = self._load_dense(generation)
            self._dense = view
        return view

    def dense_candidates(self, vector: np.ndarray, sources: Sequence[str] | None, public_only: bool,
                         wanted: Sequence[int], depth: int) -> DenseView:
        """The rows a dense search of `vector` ranks: here every chunk (the search is exact,
        the caller filters); an approximate index returns its nearest rows plus `wanted`."""
        return self.dense_view()

    def _load_dense(self, generation: int) -> DenseView:
        # Rows are streamed into preallocated arrays: fetching every blob first would hold
        # the whole matrix two or three times over (bench/index.py measured 1.1 GB at 100k).
        with self._lock:
            count = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            dim = self._db.execute("SELECT length(embedding) / 4 FROM chunks LIMIT 1").fetchone()
            rowids = np.empty(count, dtype=np.int64)
            sources = np.empty(count, dtype=object)
            public = np.empty(count, dtype=bool)
            languages = np.empty(count, dtype=object)
            matrix = np.empty((count, dim[0] if dim else 0), dtype=np.float32)
            cursor = self._db.execute(
                "SELECT c.rowid, c.source, c.visibility, c.embedding, d.title_embedding, d.language FROM chunks c "
                "JOIN documents d ON d.source = c.source AND d.id = c.document_id ORDER BY c.rowid")
            for i, (rowid, source, visibility, chunk, title, language) in enumerate(cursor):
                rowids[i], sources[i], public[i], languages[i] = rowid, source, visibility == "public", language
                matrix[i] = np.frombuffer(chunk, dtype=np.float32)
                if title:  # a document without a title scores on its chunk alone
                    matrix[i] += np.frombuffer(title, dtype=np.float32)
                    matrix[i] *= 0.5
        return DenseView(generation, rowids, sources, public, matrix, languages)

    def vocabulary(self) -> dict[str, int]:
        """Every indexed term and the number of chunks holding it, cached per generation."""
        generation = self.generation()
        if self._vocabulary is None or self._vocabulary[0] != generation:
            self._vocabulary = (generation, dict(self._rows("SELECT term, doc FROM chunks_vocab")))
        return self._vocabulary[1]

    def chunks(self, rowids: Sequence[int]) -> dict[int, StoredChunk]:
        if not rowids:
            return {}
        rows = self._rows(
            "SELECT c.rowid, c.id, c.document_id, c.source, c.ordinal, c.heading, c.text, d.title, d.url, "
            "d.updated_at, d.language, d.visibility FROM chunks c JOIN documents d "
            f"ON d.source = c.source AND d.id = c.document_id WHERE c.rowid IN ({','.join('?' * len(rowids))})",
            list(rowids))
        return {r[0]: StoredChunk(r[0], Chunk(r[1], r[2], r[3], r[4], r[5], r[6]), *r[7:]) for r in rows}

    def stats(self) -> dict[str, int]:
        rows = self._rows("SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM chunks)")
        size = self.path.stat().st_size if self.path.exists() else 0
        return {"documents": rows[0][0], "chunks": rows[0][1], "bytes": size}
