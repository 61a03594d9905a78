"""Hybrid retrieval: BM25 (SQLite FTS5) and dense embeddings, fused.

Fusion is a convex combination of normalized scores over the union of both rankings' top
`depth` candidates. It keeps how much better the best passages are, which ranks throw away:
reciprocal-rank fusion scored MRR@10 0.91 and 0.62 on stackfaq and cnil_fr, this 0.94 and
0.68 when both were compared (bench/retrieval.py measures the current figures). BM25 is divided by the query's best BM25, since
its floor is 0: a passage with none of the terms. Cosines have no such floor (every passage
sits around 0.7-0.9 with e5), so they are min-max scaled over the dense top `depth`. Every
candidate gets its real cosine, also one found by BM25 alone.

Both rankings are filtered the same way before fusion: only the sources a bot profile
may read, and only public documents when the answer will be seen in a public place.
Each `Hit` keeps the evidence the engine uses to decide whether to answer at all: the
dense similarity and how much of the question's vocabulary the passage covers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from knowledge import lexical
from knowledge.embeddings import Embedder
from knowledge.index import Index, StoredChunk
from knowledge.language import detect

# The share of BM25 in each mode's score: dense is the stronger signal, BM25 adds exact
# names and rare words. Hybrid results are flat for BM25 shares 0.15-0.3 on both eval sets
# (MRR@10 within 0.005 on stackfaq, 0.015 on cnil_fr); 0.25 sits in the middle.
WEIGHTS = {"lexical": 1.0, "dense": 0.0, "hybrid": 0.25}


@dataclass(frozen=True)
class Hit:
    """One retrieved passage and the evidence for it."""

    stored: StoredChunk
    score: float  # the fused score used for ranking
    dense: float  # mean of the query's cosines with the passage and its document's title (0: no vector yet)
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
        if mode not in WEIGHTS:
            raise ValueError(f"unknown retrieval mode {mode!r}: choose one of {', '.join(WEIGHTS)}")
        language = language or detect(query)[0] or "en"
        query_terms = lexical.terms(query, language)
        lex = self.index.lexical(query_terms, sources, public_only, self.depth) if mode != "dense" else []
        vector = self.embedder.query(query)
        dense = self._dense(vector, sources, public_only) if mode != "lexical" else []
        # Every candidate's real cosine: the engine judges a passage found by BM25 alone by it too.
        cosines = {**self._cosines(vector, [r for r, _ in lex]), **dict(dense)}
        fused = _fuse(lex, dense, cosines, WEIGHTS[mode])
        best = sorted(fused, key=fused.__getitem__, reverse=True)[:k]
        stored = self.index.chunks(best)
        bm25 = dict(lex)
        wanted = set(query_terms)
        return [Hit(stored[r], fused[r], cosines.get(r, 0.0), bm25.get(r, 0.0), _coverage(wanted, stored[r]))
                for r in best if r in stored]

    def _dense(self, vector: np.ndarray, sources: Sequence[str] | None,
               public_only: bool) -> list[tuple[int, float]]:
        view = self.index.dense_view()
        if not len(view.rowids):
            return []
        mask = np.ones(len(view.rowids), dtype=bool)
        if sources is not None:
            mask &= np.isin(view.sources, list(sources))
        if public_only:
            mask &= view.public
        positions = np.flatnonzero(mask)
        if not len(positions):
            return []
        matrix = view.matrix if len(positions) == len(mask) else view.matrix[positions]
        scores = matrix @ vector
        top = np.argsort(-scores)[: self.depth]
        return [(int(view.rowids[positions[i]]), float(scores[i])) for i in top]

    def _cosines(self, vector: np.ndarray, rowids: list[int]) -> dict[int, float]:
        """Cosines of already-embedded chunks (rowids are sorted in the dense view)."""
        view = self.index.dense_view()
        if not rowids or not len(view.rowids):
            return {}
        positions = np.minimum(np.searchsorted(view.rowids, rowids), len(view.rowids) - 1)
        found = view.rowids[positions] == rowids  # a chunk written after the view was built has none yet
        scores = view.matrix[positions[found]] @ vector
        return {int(r): float(s) for r, s in zip(view.rowids[positions[found]], scores)}


def _fuse(lex: list[tuple[int, float]], dense: list[tuple[int, float]], cosines: dict[int, float],
          lexical_weight: float) -> dict[int, float]:
    """Fused scores of every candidate of either ranking (see the module docstring)."""
    bm25 = _scaled_bm25(lex)
    if not dense:
        return bm25
    high, low = dense[0][1], dense[-1][1]
    fused = {}
    for rowid in bm25.keys() | {r for r, _ in dense}:
        # Below the dense top's floor a cosine says "not close", like a missing BM25: 0, not negative.
        closeness = max(cosines.get(rowid, low) - low, 0.0) / (high - low or 1.0)
        fused[rowid] = lexical_weight * bm25.get(rowid, 0.0) + (1.0 - lexical_weight) * closeness
    return fused


def _scaled_bm25(lex: list[tuple[int, float]]) -> dict[int, float]:
    best = lex[0][1] if lex else 0.0
    return {rowid: value / best if best > 0 else 0.0 for rowid, value in lex}


def _coverage(wanted: set[str], stored: StoredChunk) -> float:
    if not wanted:
        return 0.0
    text = f"{stored.title} {stored.chunk.heading} {stored.chunk.text}"
    have = set(lexical.terms(text, stored.language or "en"))
    return len(wanted & have) / len(wanted)


def documents_in_order(hits: Sequence[Hit]) -> list[str]:
    """The distinct document ids of `hits`, in rank order (for document-level metrics)."""
    return list(dict.fromkeys(h.stored.chunk.document_id for h in hits))
