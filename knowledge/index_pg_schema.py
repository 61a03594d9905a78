"""The PostgreSQL index's schema: numbered migrations, applied by `switchboard migrate`.

Each migration is (version, name, SQL) and runs once, in its own transaction, recorded in
`schema_migrations` of the index's schema. A transaction-level advisory lock makes two
processes migrating at once take turns. `PgIndex` refuses to open a schema that is behind
(`SchemaBehind`, naming the command), and so does the runtime at start.

Why not Alembic: the index is a handful of tables written only through knowledge/index_pg.py,
with no ORM models to diff; a list of SQL strings is the whole need. Alembic would add
a dependency, an env.py and a versions folder per deployment, and its autogenerate knows
neither pgvector's HNSW nor tsvector columns. The events store (bot/store.py) keeps its
sqlmodel `create_all`.

The dense column's dimension depends on the embedding model, unknown to a migration: the
first write fixes it (`vector(N)`) and builds the HNSW index (`PgIndex._ensure_dense`).
"""
from __future__ import annotations

import psycopg
from psycopg import sql

from knowledge.index import IndexOpenError

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "knowledge index tables", """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO meta VALUES ('generation', 0), ('chunks', 0), ('tokens', 0);
CREATE TABLE sources (
  name TEXT PRIMARY KEY, kind TEXT NOT NULL, config JSONB NOT NULL DEFAULT '{}',
  status TEXT NOT NULL DEFAULT 'new', error TEXT, documents INTEGER NOT NULL DEFAULT 0,
  chunks INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, last_sync DOUBLE PRECISION,
  cursor DOUBLE PRECISION, checkpoint TEXT, lease_owner TEXT, lease_until DOUBLE PRECISION, failed JSONB);
CREATE TABLE documents (
  source TEXT NOT NULL, id TEXT NOT NULL, title TEXT NOT NULL, url TEXT NOT NULL, updated_at TEXT,
  language TEXT NOT NULL, visibility TEXT NOT NULL, fingerprint TEXT NOT NULL, metadata TEXT NOT NULL,
  title_hash TEXT NOT NULL, title_embedding vector, PRIMARY KEY (source, id));
CREATE INDEX documents_by_title_hash ON documents (title_hash);
-- `embedding` is the chunk's own vector (reused by hash, copied as is); `dense` is what a
-- query is scored against: the mean of it and its document's title vector (knowledge/index.py).
-- `head`/`body` are the pre-computed terms (knowledge/lexical.py), `terms` their tsvector with
-- head positions weighted A and body positions D (GIN: which chunks hold a term), `tf` each
-- term's weighted count (title 2, body 1: BM25's f(q, D)), `length` their count (BM25's |D|).
CREATE TABLE chunks (
  rowid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, source TEXT NOT NULL, document_id TEXT NOT NULL,
  id TEXT NOT NULL, ordinal INTEGER NOT NULL, heading TEXT NOT NULL, text TEXT NOT NULL,
  visibility TEXT NOT NULL, language TEXT NOT NULL, hash TEXT NOT NULL, model TEXT NOT NULL,
  embedding vector NOT NULL, dense vector NOT NULL, head TEXT NOT NULL, body TEXT NOT NULL,
  length INTEGER NOT NULL, terms TSVECTOR NOT NULL, tf JSONB NOT NULL, UNIQUE (source, id));
-- A row is ~4 kB with its two vectors: kept EXTENDED, `tf` and `terms` were compressed to make it
-- fit in 2 kB, and every BM25 lookup decompressed `tf` again (12 µs a row). MAIN moves the
-- vectors out of line first (they are read for a query's few hundred candidates only).
ALTER TABLE chunks ALTER COLUMN tf SET STORAGE MAIN, ALTER COLUMN terms SET STORAGE MAIN;
CREATE INDEX chunks_by_document ON chunks (source, document_id);
CREATE INDEX chunks_by_hash ON chunks (hash, model);
CREATE INDEX chunks_terms ON chunks USING gin (terms);
CREATE TABLE quarantine (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, source TEXT NOT NULL, document_id TEXT NOT NULL,
  kind TEXT NOT NULL, rule TEXT NOT NULL, snippet TEXT NOT NULL);
CREATE INDEX quarantine_by_document ON quarantine (source, document_id);
-- Every indexed term with the number of chunks holding it: spelling correction and BM25's IDF.
CREATE TABLE vocabulary (term TEXT PRIMARY KEY, chunks INTEGER NOT NULL);
"""),
)
LATEST = MIGRATIONS[-1][0]
LOCK_KEY = 0x5B_1D_E7  # pg_advisory_xact_lock key: one migrator at a time


class SchemaBehind(IndexOpenError):
    """Raised when the PostgreSQL index's schema is older than this Switchboard (or missing)."""


def applied(conn: psycopg.Connection, schema: str) -> int:
    """The highest migration applied in `schema` (0: none, or no schema yet)."""
    exists = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".schema_migrations',)).fetchone()[0]
    if exists is None:
        return 0
    query = sql.SQL("SELECT COALESCE(MAX(version), 0) FROM {}.schema_migrations").format(sql.Identifier(schema))
    return conn.execute(query).fetchone()[0]


def check(conn: psycopg.Connection, schema: str, where: str) -> None:
    """Raise `SchemaBehind` unless every migration is applied."""
    version = applied(conn, schema)
    if version < LATEST:
        raise SchemaBehind(f"the knowledge index in {where} (schema {schema}) is at version {version}, this "
                           f"Switchboard needs {LATEST}: run `switchboard migrate`")
    if version > LATEST:
        raise SchemaBehind(f"the knowledge index in {where} (schema {schema}) is at version {version}, newer "
                           f"than this Switchboard ({LATEST}): upgrade Switchboard")


def migrate(url: str, schema: str) -> list[tuple[int, str]]:
    """Apply the pending migrations to `schema` (created if missing); returns those applied."""
    done: list[tuple[int, str]] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        for version, name, statements in MIGRATIONS:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
                conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {}.schema_migrations (version INTEGER PRIMARY KEY, "
                                     "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
                             .format(sql.Identifier(schema)))
                if applied(conn, schema) >= version:
                    continue
                conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema)))
                conn.execute(statements)
                conn.execute(sql.SQL("INSERT INTO {}.schema_migrations (version, name) VALUES (%s, %s)")
                             .format(sql.Identifier(schema)), (version, name))
                done.append((version, name))
    return done


def drop(url: str, schema: str) -> None:
    """Remove `schema` and everything in it (a throwaway evaluation index)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
