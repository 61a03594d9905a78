"""The knowledge index on PostgreSQL with pgvector, shared by every process of a deployment.

Same contract as the SQLite `Index` (knowledge/indexes.py), same tables in a schema of
their own (`knowledge` by default, so they never meet the events store's), created by
numbered migrations (knowledge/index_pg_schema.py, `switchboard migrate`).

- **Writes** are transactions that first bump the `generation` row of `meta`: that row lock
  makes writers take turns, as SQLite's `BEGIN IMMEDIATE` does, and readers' caches (the
  vocabulary, the document languages) notice the change.
- **Leases** are one conditional UPDATE, atomic across processes and hosts.
- **Lexical search** is FTS5's BM25 ported to SQL over the same pre-computed terms
  (knowledge/index_pg_wire.py): a GIN index on the tsvector finds the chunks holding any
  query term; f comes from each chunk's weighted term counts (`tf`), IDF from the
  `vocabulary` table (chunks per term), |D| and avgdl from the stored lengths. Same weights (title 2, body 1), k1 1.2, b 0.75: the scores equal FTS5's.
- **Dense search** asks pgvector's HNSW index (inner product, as SQLite's exact search
  scores: a row is the mean of a chunk's and its title's unit vectors, so not unit length)
  for the nearest `CANDIDATES`× depth rows of each document language, plus BM25's
  candidates; retrieval re-ranks those exactly (knowledge/retrieval.py). Per language,
  because the ranking corrects cosines by language pair (knowledge/crosslingual.py): the
  other-language page that answers must be among the candidates.
"""
from __future__ import annotations

import json
import math
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from knowledge import index_pg_schema as schema_
from knowledge.documents import Chunk, Document
from knowledge.index import FAILED_KEPT, FTS_WEIGHTS, DenseView, Flagged, IndexOpenError, SourceInfo, \
    StoredChunk, title_hash
from knowledge.index_pg_wire import distinct_terms, frequencies, register_vector, tsquery, tsvector
from knowledge.stripped import STRIPPED_LIKE, Stripped, from_rows

DEFAULT_SCHEMA = "knowledge"
CANDIDATES = 3  # HNSW candidates per document language, as a multiple of the retriever's depth
# HNSW's search breadth (pgvector's default is 40; INDEX_EF_SEARCH). Top-10 recall against
# exact search at 1M clustered synthetic chunks (bench/index_scale.py): 40 → 0.916, 100-200 →
# 0.91-0.93, 400 → 0.952, 800 → 0.960; dense search 13, 19-20, 30, 49 ms.
EF_SEARCH = 200
K1, B = 1.2, 0.75  # FTS5's BM25 constants
BULK_MEMORY = "1GB"  # maintenance_work_mem for a bulk load's index builds (the HNSW graph should fit)

# FTS5's bm25(): the sum over query terms of IDF × f·(k1+1) / (f + k1·(1 - b + b·|D|/avgdl)); the
# GIN index finds the chunks holding any term, `tf` gives f (one jsonb lookup per term: unnesting
# the tsvector of each matching row cost 4× more at 10k chunks).
BM25_SQL = f"""
SELECT c.rowid, {{score}} AS score
FROM chunks c CROSS JOIN LATERAL (
  SELECT {{lookups}}, {K1}::float8 * ({1 - B}::float8 + {B}::float8 * c.length / %(avgdl)s::float8) AS norm OFFSET 0) f
WHERE c.terms @@ %(query)s::tsquery {{filters}}
ORDER BY score DESC, c.rowid LIMIT %(limit)s
"""
BM25_LOOKUP = "(c.tf -> %(term{n})s)::float8 AS f{n}"  # OFFSET 0 above: each looked up once a row
BM25_TERM = f"COALESCE(%(idf{{n}})s::float8 * f.f{{n}} * {K1 + 1} / (f.f{{n}} + f.norm), 0)"
SOURCE_COLUMNS = ("name, kind, config, status, error, documents, chunks, failures, last_sync, cursor, "
                  "checkpoint, failed")


class PgIndex:
    """The PostgreSQL knowledge index. Safe to share between threads (one connection, locked)."""

    def __init__(self, url: str, schema: str = DEFAULT_SCHEMA, search: str = "hnsw", ef_search: int = EF_SEARCH):
        self.url, self.schema, self.search = url, schema, search  # search: "hnsw", or "exact" (benchmarks)
        self.ef_search = int(ef_search)
        self._lock = threading.RLock()
        self._closed = False
        self._db = self._connect()
        self._vocabulary: tuple[int, dict[str, int]] | None = None
        self._languages: tuple[int, list[str]] | None = None
        self._bulk = False

    def _connect(self) -> psycopg.Connection:
        try:
            db = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise IndexOpenError(f"cannot open the knowledge index at {_masked(self.url)}: {exc}") from exc
        try:
            schema_.check(db, self.schema, _masked(self.url))
            db.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(self.schema)))
            db.execute(f"SET hnsw.ef_search = {self.ef_search}")
            version = db.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            if version and tuple(int(p) for p in version[0].split(".")[:2]) >= (0, 8):
                db.execute("SET hnsw.iterative_scan = relaxed_order")  # a filtered search still fills its LIMIT
            register_vector(db)
        except BaseException:
            db.close()
            raise
        return db

    @property
    def _conn(self) -> psycopg.Connection:
        """The connection, made again after the server went away (the call that saw it failed)."""
        if self._db.broken and not self._closed:
            self._db = self._connect()
        return self._db

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection]:
        with self._lock:
            db = self._conn
            with db.transaction():
                db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                yield db

    @contextmanager
    def bulk_load(self, memory: str = BULK_MEMORY) -> Iterator[None]:
        """Fill an empty index fast: its HNSW and GIN indexes are built once, after the writes.

        Inserting into pgvector's HNSW graph and a GIN index row by row costs most of a
        write (~400 chunks/s at 100k); building each once over the loaded rows is many times
        faster. Refused unless the index is empty (searches meanwhile would scan every row).
        If the load dies half-way, the next write outside a bulk load builds what is missing.
        """
        if self.stats()["chunks"]:
            raise ValueError("a bulk load needs an empty knowledge index")
        with self._lock:
            self._conn.execute("DROP INDEX IF EXISTS chunks_dense, chunks_terms")
            self._bulk = True
        try:
            yield
        finally:
            with self._lock:
                self._bulk = False
                db = self._conn
                db.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(memory)))
                try:
                    self._ensure_indexes(db)
                finally:
                    db.execute("RESET maintenance_work_mem")

    def _rows(self, query: str, params: Sequence[Any] | dict = (), binary: bool = False) -> list[tuple]:
        with self._lock:
            return self._conn.cursor(binary=binary).execute(query, params).fetchall()

    def generation(self) -> int:
        return self._rows("SELECT value FROM meta WHERE key = 'generation'")[0][0]

    # -- sources ---------------------------------------------------------------------
    def add_source(self, name: str, kind: str, config: dict[str, Any]) -> None:
        with self._write() as db:
            db.execute("INSERT INTO sources (name, kind, config) VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE "
                       "SET kind = excluded.kind, config = sources.config || excluded.config",
                       (name, kind, json.dumps(config)))

    def remove_source(self, name: str) -> int:
        """Forget a source and everything indexed from it; returns the documents removed."""
        removed = self.remove(name, self.document_ids(name))
        with self._write() as db:
            db.execute("DELETE FROM sources WHERE name = %s", (name,))
        return removed

    def set_cursor(self, name: str, cursor: float, checkpoint: str | None = None) -> None:
        with self._write() as db:
            db.execute("UPDATE sources SET cursor = %s, checkpoint = %s WHERE name = %s", (cursor, checkpoint, name))

    def lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take (or extend) the right to sync `name` for `ttl` seconds: one conditional UPDATE,
        atomic across every process and host sharing this database. Times are the server's
        clock, so hosts whose clocks disagree by more than a short lease still agree."""
        with self._lock:
            return self._conn.execute(
                "UPDATE sources SET lease_owner = %s, lease_until = extract(epoch FROM clock_timestamp()) + %s "
                "WHERE name = %s AND (lease_owner IS NULL OR lease_owner = %s OR "
                "lease_until < extract(epoch FROM clock_timestamp()))", (owner, ttl, name, owner)).rowcount == 1

    def release(self, name: str, owner: str) -> None:
        with self._lock:
            self._conn.execute("UPDATE sources SET lease_owner = NULL, lease_until = NULL "
                             "WHERE name = %s AND lease_owner = %s", (name, owner))

    def set_status(self, name: str, status: str, error: str | None = None, failures: int = 0,
                   failed: Sequence[tuple[str, str]] = ()) -> None:
        with self._write() as db:
            synced = time.time() if status in ("success", "failed") else None
            db.execute("UPDATE sources SET status = %s, error = %s, failures = %s, failed = %s, "
                       "documents = (SELECT COUNT(*) FROM documents WHERE source = %s), "
                       "chunks = (SELECT COUNT(*) FROM chunks WHERE source = %s), "
                       "last_sync = COALESCE(%s, last_sync) WHERE name = %s",
                       (status, error, failures, json.dumps([list(f) for f in failed[:FAILED_KEPT]]), name, name,
                        synced, name))

    def sources(self) -> list[SourceInfo]:
        rows = self._rows(f"SELECT {SOURCE_COLUMNS} FROM sources ORDER BY name")
        return [SourceInfo(r[0], r[1], r[2], *r[3:11], tuple(map(tuple, r[11] or []))) for r in rows]

    def source(self, name: str) -> SourceInfo | None:
        return next((s for s in self.sources() if s.name == name), None)

    # -- documents -------------------------------------------------------------------
    def fingerprints(self, source: str) -> dict[str, str]:
        return dict(self._rows("SELECT id, fingerprint FROM documents WHERE source = %s", (source,)))

    def cached_vectors(self, hashes: Iterable[str], model: str) -> dict[str, np.ndarray]:
        """Vectors already computed for these chunk or title hashes."""
        wanted = list(set(hashes))
        found: dict[str, np.ndarray] = {}
        for h, vector in self._rows("SELECT DISTINCT ON (hash) hash, embedding FROM chunks "
                                    "WHERE model = %s AND hash = ANY(%s)", (model, wanted), binary=True):
            found[h] = vector
        rest = [h for h in wanted if h not in found]
        if rest:
            for h, vector in self._rows("SELECT DISTINCT ON (title_hash) title_hash, title_embedding FROM documents "
                                        "WHERE title_embedding IS NOT NULL AND title_hash = ANY(%s)", (rest,),
                                        binary=True):
                found[h] = vector
        return found

    def put(self, items: Sequence[tuple[Document, Sequence[Chunk], Sequence[str], np.ndarray, np.ndarray | None]],
            model: str, terms: Sequence[tuple[Sequence[str], Sequence[str]]],
            flags: Sequence[Sequence[Any]] = ()) -> None:
        """Replace each document with its chunks (see `Index.put`)."""
        flat_terms = list(terms)
        documents, chunks, quarantine = [], [], []
        at = 0
        for n, (document, parts, hashes, vectors, title_vector) in enumerate(items):
            title = None if title_vector is None else np.asarray(title_vector, dtype=np.float32)
            documents.append((document.source, document.id, document.title, document.url, document.updated_at,
                              document.language, document.visibility, document.fingerprint(),
                              json.dumps(dict(document.metadata), default=str), title_hash(document.title, model),
                              title))
            quarantine += [(document.source, document.id, f.kind, f.rule, f.snippet)
                           for f in (flags[n] if n < len(flags) else ())]
            for chunk, digest, vector in zip(parts, hashes, vectors):
                head, body = flat_terms[at]
                at += 1
                vector = np.asarray(vector, dtype=np.float32)
                dense = vector if title is None else (vector + title) * np.float32(0.5)
                chunks.append((chunk.source, chunk.document_id, chunk.id, chunk.ordinal, chunk.heading, chunk.text,
                               document.visibility, document.language, digest, model, vector, dense,
                               " ".join(head), " ".join(body), len(head) + len(body), tsvector(head, body),
                               Jsonb(frequencies(head, body, FTS_WEIGHTS))))
        self._insert(documents, chunks, quarantine, distinct_terms(flat_terms[:at]))

    def _insert(self, documents: list[tuple], chunks: list[tuple], quarantine: list[tuple], counts) -> None:
        with self._write() as db:
            by_source: dict[str, list[str]] = {}
            for row in documents:
                by_source.setdefault(row[0], []).append(row[1])
            for source, ids in by_source.items():
                self._delete(db, source, ids)
            if chunks:
                self._ensure_dense(db, len(chunks[0][10]))
            if not self._bulk:
                self._ensure_indexes(db)
            with db.cursor() as cur:
                cur.executemany("INSERT INTO documents VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %b)", documents)
                cur.executemany("INSERT INTO quarantine (source, document_id, kind, rule, snippet) "
                                "VALUES (%s, %s, %s, %s, %s)", quarantine)
                cur.executemany("INSERT INTO chunks (source, document_id, id, ordinal, heading, text, visibility, "
                                "language, hash, model, embedding, dense, head, body, length, terms, tf) VALUES "
                                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %b, %b, %s, %s, %s, %s::tsvector, %s)",
                                chunks)
            terms = sorted(counts)  # one lock order for every writer
            db.execute("INSERT INTO vocabulary SELECT * FROM unnest(%s::text[], %s::int[]) ON CONFLICT (term) "
                       "DO UPDATE SET chunks = vocabulary.chunks + excluded.chunks",
                       (terms, [counts[t] for t in terms]))
            self._count(db, len(chunks), sum(row[14] for row in chunks))

    @staticmethod
    def _count(db: psycopg.Connection, chunks: int, tokens: int) -> None:
        db.execute("UPDATE meta SET value = value + CASE key WHEN 'chunks' THEN %s ELSE %s END "
                   "WHERE key IN ('chunks', 'tokens')", (chunks, tokens))

    def _ensure_dense(self, db: psycopg.Connection, dim: int) -> None:
        """The first write fixes the vectors' dimension (the HNSW index needs it)."""
        if db.execute("SELECT 1 FROM meta WHERE key = 'dimension'").fetchone():
            return
        for table, column in (("chunks", "embedding"), ("chunks", "dense"), ("documents", "title_embedding")):
            db.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE vector({})").format(
                sql.Identifier(table), sql.Identifier(column), sql.Literal(dim)))
        db.execute("INSERT INTO meta VALUES ('dimension', %s)", (dim,))

    @staticmethod
    def _ensure_indexes(db: psycopg.Connection) -> None:
        """The GIN index on the terms, and the HNSW index once the dimension is known.

        Both exist after the first write; only a bulk load (or one that died) drops them."""
        present = {r[0] for r in db.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                                            "AND indexname IN ('chunks_dense', 'chunks_terms')")}
        if "chunks_terms" not in present:
            db.execute("CREATE INDEX chunks_terms ON chunks USING gin (terms)")
        if "chunks_dense" not in present and db.execute("SELECT 1 FROM meta WHERE key = 'dimension'").fetchone():
            db.execute("CREATE INDEX chunks_dense ON chunks USING hnsw (dense vector_ip_ops)")

    def remove(self, source: str, document_ids: Iterable[str]) -> int:
        ids = list(document_ids)
        if not ids:
            return 0
        with self._write() as db:
            return self._delete(db, source, ids)

    def _delete(self, db: psycopg.Connection, source: str, ids: list[str]) -> int:
        db.execute("UPDATE vocabulary v SET chunks = v.chunks - d.n FROM (SELECT lexeme, COUNT(*) AS n FROM chunks c, "
                   "unnest(tsvector_to_array(c.terms)) AS lexeme WHERE c.source = %s AND c.document_id = ANY(%s) "
                   "GROUP BY lexeme ORDER BY lexeme) d WHERE v.term = d.lexeme", (source, ids))
        gone = db.execute("DELETE FROM chunks WHERE source = %s AND document_id = ANY(%s) RETURNING length",
                          (source, ids)).fetchall()
        self._count(db, -len(gone), -sum(r[0] for r in gone))
        db.execute("DELETE FROM quarantine WHERE source = %s AND document_id = ANY(%s)", (source, ids))
        return db.execute("DELETE FROM documents WHERE source = %s AND id = ANY(%s)", (source, ids)).rowcount

    def document_ids(self, source: str) -> set[str]:
        return {r[0] for r in self._rows("SELECT id FROM documents WHERE source = %s", (source,))}

    def flagged(self, source: str | None = None) -> list[Flagged]:
        where, params = ("WHERE source = %s", (source,)) if source is not None else ("", ())
        return [Flagged(*r) for r in self._rows(
            f"SELECT source, document_id, kind, rule, snippet FROM quarantine {where} ORDER BY source, document_id, seq",
            params)]

    def stripped(self, source: str | None = None) -> list[Stripped]:
        where, params = ((" AND source = %s", (STRIPPED_LIKE, source)) if source is not None
                         else ("", (STRIPPED_LIKE,)))
        return from_rows(self._rows(
            f"SELECT source, id, title, metadata FROM documents WHERE metadata LIKE %s{where} ORDER BY source, id",
            params))

    # -- search ----------------------------------------------------------------------
    def lexical(self, query_terms: Sequence[str], sources: Sequence[str] | None, public_only: bool,
                limit: int) -> list[tuple[int, float]]:
        """BM25 over the chunk terms, as FTS5 scores it: (rowid, score) best first."""
        unique = list(dict.fromkeys(t for t in query_terms if t))
        if not unique:
            return []
        meta = dict(self._rows("SELECT key, value FROM meta WHERE key IN ('chunks', 'tokens')"))
        rows, tokens = meta.get("chunks", 0), meta.get("tokens", 0)
        hits = dict(self._rows("SELECT term, chunks FROM vocabulary WHERE term = ANY(%s)", (unique,)))
        unique = [t for t in unique if hits.get(t, 0) > 0]
        if not unique or not rows:
            return []
        idfs = [max(math.log((rows - hits[t] + 0.5) / (hits[t] + 0.5)), 1e-6) for t in unique]
        filters, params = _filters(sources, public_only)
        params.update(query=tsquery(unique), avgdl=tokens / rows, limit=limit)
        for n, (term, idf) in enumerate(zip(unique, idfs)):
            params.update({f"term{n}": term, f"idf{n}": idf})
        query = BM25_SQL.format(score=" + ".join(BM25_TERM.format(n=n) for n in range(len(unique))),
                                lookups=", ".join(BM25_LOOKUP.format(n=n) for n in range(len(unique))), filters=filters)
        return [(r[0], float(r[1])) for r in self._rows(query, params)]

    def dense_candidates(self, vector: np.ndarray, sources: Sequence[str] | None, public_only: bool,
                         wanted: Sequence[int], depth: int) -> DenseView:
        """The nearest rows of each document language (HNSW), and the `wanted` rows."""
        filters, params = _filters(sources, public_only)
        columns = "c.rowid, c.source, c.visibility = 'public', c.language, c.dense"
        rows = self._rows(f"SELECT {columns} FROM chunks c WHERE c.rowid = ANY(%(wanted)s) {filters}",
                          {**params, "wanted": list(wanted)}, binary=True) if wanted else []
        if depth > 0:
            params.update(vector=np.asarray(vector, dtype=np.float32), limit=depth * CANDIDATES)
            nearest = (f"SELECT {columns} FROM chunks c WHERE c.language = %(language)s {filters} "
                       "ORDER BY c.dense <#> %(vector)b LIMIT %(limit)s")
            languages = self._document_languages()
            with self._lock, self._conn.transaction():
                if self.search == "exact":
                    self._db.execute("SET LOCAL enable_indexscan = off")
                for language in languages:
                    rows += self._db.cursor(binary=True).execute(nearest, {**params, "language": language}).fetchall()
        return _view(rows)

    def _document_languages(self) -> list[str]:
        generation = self.generation()
        if self._languages is None or self._languages[0] != generation:
            self._languages = (generation, [r[0] for r in self._rows("SELECT DISTINCT language FROM documents")])
        return self._languages[1]

    def vocabulary(self) -> dict[str, int]:
        """Every indexed term and the number of chunks holding it, cached per generation."""
        generation = self.generation()
        if self._vocabulary is None or self._vocabulary[0] != generation:
            self._vocabulary = (generation, dict(self._rows("SELECT term, chunks FROM vocabulary WHERE chunks > 0")))
        return self._vocabulary[1]

    def chunks(self, rowids: Sequence[int]) -> dict[int, StoredChunk]:
        if not rowids:
            return {}
        rows = self._rows(
            "SELECT c.rowid, c.id, c.document_id, c.source, c.ordinal, c.heading, c.text, d.title, d.url, "
            "d.updated_at, d.language, d.visibility FROM chunks c JOIN documents d "
            "ON d.source = c.source AND d.id = c.document_id WHERE c.rowid = ANY(%s)", (list(rowids),))
        return {r[0]: StoredChunk(r[0], Chunk(r[1], r[2], r[3], r[4], r[5], r[6]), *r[7:]) for r in rows}

    def stats(self) -> dict[str, int]:
        rows = self._rows("SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM chunks), "
                          "(SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n "
                          "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r')", (self.schema,))
        return {"documents": rows[0][0], "chunks": rows[0][1], "bytes": int(rows[0][2])}


def _filters(sources: Sequence[str] | None, public_only: bool) -> tuple[str, dict[str, Any]]:
    where, params = "", {}
    if sources is not None:
        where += " AND c.source = ANY(%(sources)s)"
        params["sources"] = list(sources)
    if public_only:
        where += " AND c.visibility = 'public'"
    return where, params


def _view(rows: list[tuple]) -> DenseView:
    """A partial `DenseView` of these rows, by rowid, each once."""
    unique = sorted({r[0]: r for r in rows}.values())
    dim = len(unique[0][4]) if unique else 0
    return DenseView(-1, np.array([r[0] for r in unique], dtype=np.int64),
                     np.array([r[1] for r in unique], dtype=object), np.array([r[2] for r in unique], dtype=bool),
                     np.array([r[4] for r in unique], dtype=np.float32).reshape(len(unique), dim),
                     np.array([r[3] for r in unique], dtype=object), partial=True)


def _masked(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url
