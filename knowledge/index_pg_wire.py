"""What the PostgreSQL index sends and reads: pgvector values and tsvectors of our terms.

pgvector's binary format (a 16-bit dimension, 16 unused bits, big-endian float4s) is
adapted here both ways, so vectors travel as bytes and come back bit for bit as the
float32 arrays the SQLite index stores (`switchboard index copy` relies on it); no extra
package is needed.

A chunk's terms were already computed by knowledge/lexical.py: the tsvector is written as a
literal, never parsed by a text search configuration, so PostgreSQL indexes exactly the
terms SQLite's FTS5 does. Head terms get weight A and body terms D, one position each:
the BM25 port (knowledge/index_pg.py) counts a term's positions per weight.
"""
from __future__ import annotations

import struct
from collections import Counter
from typing import Sequence

import numpy as np
import psycopg
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo

MAX_POSITION = 16383  # PostgreSQL's last tsvector position
MAX_POSITIONS = 255  # positions kept per lexeme (PostgreSQL keeps 256): BM25 saturates long before
MAX_LEXEME_BYTES = 2046  # longer "words" (a pasted blob) can't be tsvector lexemes


class _VectorBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data) -> np.ndarray:
        dim = struct.unpack_from(">H", data)[0]
        return np.frombuffer(data, dtype=">f4", count=dim, offset=4).astype(np.float32)


class _VectorTextLoader(Loader):
    def load(self, data) -> np.ndarray:
        return np.array(bytes(data)[1:-1].split(b","), dtype=np.float32)


def register_vector(conn: psycopg.Connection) -> None:
    """Teach `conn` to send numpy arrays as `vector` and to read `vector` back as float32 arrays."""
    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise psycopg.errors.UndefinedObject("the pgvector extension is not installed in this database")

    class VectorDumper(Dumper):
        format = Format.BINARY
        oid = info.oid

        def dump(self, obj) -> bytes:
            vector = np.asarray(obj, dtype=">f4").ravel()
            return struct.pack(">HH", len(vector), 0) + vector.tobytes()
    conn.adapters.register_dumper(np.ndarray, VectorDumper)
    conn.adapters.register_loader(info.oid, _VectorBinaryLoader)
    conn.adapters.register_loader(info.oid, _VectorTextLoader)


def indexable(terms: Sequence[str]) -> list[str]:
    return [t for t in terms if t and len(t.encode()) <= MAX_LEXEME_BYTES]


def _quoted(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector(head: Sequence[str], body: Sequence[str]) -> str:
    """The tsvector literal of a chunk's (head, body) terms."""
    positions: dict[str, list[str]] = {}
    for n, term in enumerate([*head, *body], 1):
        if not term or len(term.encode()) > MAX_LEXEME_BYTES:
            continue
        kept = positions.setdefault(term, [])
        at = min(n, MAX_POSITION)  # as PostgreSQL would clamp it
        if len(kept) < MAX_POSITIONS:  # a repeated clamped position is dropped by PostgreSQL
            kept.append(f"{at}A" if n <= len(head) else str(at))
    return " ".join(f"{_quoted(t)}:{','.join(p)}" for t, p in positions.items())


def frequencies(head: Sequence[str], body: Sequence[str], weights: tuple[float, float]) -> dict[str, float]:
    """Each indexable term's weighted count in the chunk (FTS5's f(q, D) with column weights)."""
    counts: dict[str, float] = {}
    for terms, weight in ((head, weights[0]), (body, weights[1])):
        for term in indexable(terms):
            counts[term] = counts.get(term, 0.0) + weight
    return counts


def tsquery(terms: Sequence[str]) -> str:
    """Any of `terms` (already unique), as a tsquery literal."""
    return " | ".join(_quoted(t) for t in terms)


def distinct_terms(pairs: Sequence[tuple[Sequence[str], Sequence[str]]]) -> Counter:
    """How many of these chunks hold each term (the vocabulary's increments)."""
    counts: Counter = Counter()
    for head, body in pairs:
        counts.update(set(indexable(head)) | set(indexable(body)))
    return counts
