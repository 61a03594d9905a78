"""The knowledge index's contract, and opening one from a location.

Two implementations keep the same contract: `Index` (knowledge/index.py), one SQLite file,
the embedded default; and `PgIndex` (knowledge/index_pg.py), PostgreSQL with pgvector, which
every process of a deployment can share. Ingestion, sync, retrieval and the runtime only
use what `KnowledgeIndex` lists; tests/knowledge/test_index_contract.py runs one suite
against both.

A location is `postgresql://…` (or `postgres://…`) for PostgreSQL, else `sqlite:///path` or
a plain path for SQLite.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ContextManager, Iterable, Protocol, Sequence

import numpy as np

from knowledge.documents import Chunk, Document
from knowledge.index import DenseView, Flagged, Index, SourceInfo, StoredChunk
from knowledge.stripped import Stripped

POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


class KnowledgeIndex(Protocol):
    """What the rest of Switchboard asks of a knowledge index."""

    def close(self) -> None: ...

    def generation(self) -> int: ...

    def bulk_load(self) -> ContextManager[None]: ...

    def add_source(self, name: str, kind: str, config: dict[str, Any]) -> None: ...

    def remove_source(self, name: str) -> int: ...

    def set_cursor(self, name: str, cursor: float, checkpoint: str | None = None) -> None: ...

    def lease(self, name: str, owner: str, ttl: float) -> bool: ...

    def release(self, name: str, owner: str) -> None: ...

    def set_status(self, name: str, status: str, error: str | None = None, failures: int = 0,
                   failed: Sequence[tuple[str, str]] = ()) -> None: ...

    def sources(self) -> list[SourceInfo]: ...

    def source(self, name: str) -> SourceInfo | None: ...

    def fingerprints(self, source: str) -> dict[str, str]: ...

    def cached_vectors(self, hashes: Iterable[str], model: str) -> dict[str, np.ndarray]: ...

    def put(self, items: Sequence[tuple[Document, Sequence[Chunk], Sequence[str], np.ndarray, np.ndarray | None]],
            model: str, terms: Sequence[tuple[Sequence[str], Sequence[str]]],
            flags: Sequence[Sequence[Any]] = ()) -> None: ...

    def remove(self, source: str, document_ids: Iterable[str]) -> int: ...

    def document_ids(self, source: str) -> set[str]: ...

    def flagged(self, source: str | None = None) -> list[Flagged]: ...

    def stripped(self, source: str | None = None) -> list[Stripped]: ...

    def lexical(self, query_terms: Sequence[str], sources: Sequence[str] | None, public_only: bool,
                limit: int) -> list[tuple[int, float]]: ...

    def dense_candidates(self, vector: np.ndarray, sources: Sequence[str] | None, public_only: bool,
                         wanted: Sequence[int], depth: int) -> DenseView: ...

    def vocabulary(self) -> dict[str, int]: ...

    def chunks(self, rowids: Sequence[int]) -> dict[int, StoredChunk]: ...

    def stats(self) -> dict[str, int]: ...


def is_postgres(location: str) -> bool:
    return str(location).startswith(POSTGRES_SCHEMES)


def sqlite_path(location: str | Path) -> Path:
    """The file of a `sqlite:///path` location (or of a plain path)."""
    text = str(location)
    return Path(text[len("sqlite:///"):] if text.startswith("sqlite:///") else text).expanduser()


def open_index(location: str | Path, schema: str | None = None, ef_search: int | None = None) -> KnowledgeIndex:
    """The index at `location`: PostgreSQL for a postgresql:// URL (its schema must be
    migrated: `switchboard migrate`; `ef_search`: its HNSW search breadth), else an SQLite
    file (made when missing; its search is exact)."""
    if is_postgres(str(location)):
        from knowledge.index_pg import DEFAULT_SCHEMA, EF_SEARCH, PgIndex

        return PgIndex(str(location), schema or DEFAULT_SCHEMA, ef_search=ef_search or EF_SEARCH)
    return Index(sqlite_path(location))
