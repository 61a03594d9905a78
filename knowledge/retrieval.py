"""Hybrid retrieval: BM25 (SQLite FTS5) and dense embeddings, fused.

Fusion is a convex combination of min-max normalized scores over each ranking's top
`depth` candidates (measured against reciprocal-rank fusion in bench/retrieval.py).

Both rankings are filtered the same way before fusion: only the sources a bot profile
may read, and only public documents when the answer will be seen in a public place.
Each `Hit` keeps the evidence the engine uses to decide whether to answer at all: the
dense cosine and how much of the question's vocabulary the passage covers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from knowledge import lexical
from knowledge.embeddings import Embedder
from knowledge.index import Index, StoredChunk
from knowledge.language import detect

MODES = ("lexical", "dense", "hybrid")
LEXICAL_WEIGHT = 0.2


@dataclass(frozen=True)
class Hit:
    """One retrieved passage and the evidence for it."""

    stored: StoredChunk
    score: float  # the fused score used for ranking
    dense: float  # cosine similarity with the query (0 when not computed)
    lexical: float  # BM25 score (0 when the passage has none of the query's terms)
    coverage: float  # share of the query's distinct terms found in the passage


class Retriever:
    """Searches one `Index` with one `Embedder`."""

    def __init__(self, index: Index, embedder: Embedder, depth: int = 50):
        self.index = index
        self.embedder = embedder
        self.depth = depth

    def search(self, query: str, *, sources: Sequence[str] | None = None, public_only: bool = False,
               k: int = 8, mode: str = "hybrid", language: str = "") -> list[Hit]:
        """The `k` best passages for `query`, best first."""
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}: choose one of {', '.join(MODES)}")
        language = language or detect(query)[0] or "en"
        query_terms = lexical.terms(query, language)
        lex = self.index.lexical(query_terms, sources, public_only, self.depth) if mode != "dense" else []
        dense, cosines = self._dense(query, sources, public_only) if mode != "lexical" else ([], {})
        fused = _fuse(lex, dense, LEXICAL_WEIGHT if mode == "hybrid" else 1.0)
        best = sorted(fused, key=fused.__getitem__, reverse=True)[:k]
        stored = self.index.chunks(best)
        if mode == "lexical" and best:
            cosines = self._cosines(query, best)
        bm25 = dict(lex)
        wanted = set(query_terms)
        return [Hit(stored[r], fused[r], cosines.get(r, 0.0), bm25.get(r, 0.0), _coverage(wanted, stored[r]))
                for r in best if r in stored]

    def _dense(self, query: str, sources: Sequence[str] | None,
               public_only: bool) -> tuple[list[tuple[int, float]], dict[int, float]]:
        view = self.index.dense_view()
        if not len(view.rowids):
            return [], {}
        mask = np.ones(len(view.rowids), dtype=bool)
        if sources is not None:
            mask &= np.isin(view.sources, list(sources))
        if public_only:
            mask &= view.public
        positions = np.flatnonzero(mask)
        if not len(positions):
            return [], {}
        matrix = view.matrix if len(positions) == len(mask) else view.matrix[positions]
        scores = matrix @ self.embedder.query(query)
        top = np.argsort(-scores)[: self.depth]
        ranking = [(int(view.rowids[positions[i]]), float(scores[i])) for i in top]
        return ranking, dict(ranking)

    def _cosines(self, query: str, rowids: list[int]) -> dict[int, float]:
        """Cosines of already-embedded chunks (rowids are sorted in the dense view)."""
        view = self.index.dense_view()
        positions = np.searchsorted(view.rowids, rowids)
        scores = view.matrix[positions] @ self.embedder.query(query)
        return {r: float(s) for r, s in zip(rowids, scores)}


def _fuse(lex: list[tuple[int, float]], dense: list[tuple[int, float]], lexical_weight: float) -> dict[int, float]:
    fused: dict[int, float] = {}
    for weight, ranking in ((lexical_weight, lex), (1.0 - lexical_weight, dense)):
        if not ranking:
            continue
        high, low = ranking[0][1], ranking[-1][1]
        for rowid, value in ranking:
            fused[rowid] = fused.get(rowid, 0.0) + weight * (value - low) / (high - low or 1.0)
    return fused


def _coverage(wanted: set[str], stored: StoredChunk) -> float:
    if not wanted:
        return 0.0
    text = f"{stored.title} {stored.chunk.heading} {stored.chunk.text}"
    have = set(lexical.terms(text, stored.language or "en"))
    return len(wanted & have) / len(wanted)


def documents_in_order(hits: Sequence[Hit]) -> list[str]:
    """The distinct document ids of `hits`, in rank order (for document-level metrics)."""
    return list(dict.fromkeys(h.stored.chunk.document_id for h in hits))
