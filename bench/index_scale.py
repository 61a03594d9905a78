"""Knowledge index at scale: SQLite (exact search in memory) vs PostgreSQL + pgvector (HNSW,
and exact) — ingestion, query latency, recall of the approximate search; then retrieval
quality on the public eval sets, SQLite vs PostgreSQL.

Part 1 (scale) puts `size` synthetic chunks into each backend through `put`, as ingestion
does: unit vectors in clusters of 50 (a chunk is its cluster's centre plus noise, cosine
~0.8 to it; a question is a chunk plus more noise), and terms drawn from a Zipf vocabulary
of 20,000 words (ranks 101 on: the first hundred stand for stop words), 5 in the head and 60
in the body; a question has three of them. It times `put` (chunks/s; embedding is
not part of it: real ingestion is bound by e5 at ~3 chunks/s on 2 cores), then
`Retriever.search` in dense and hybrid mode for `queries` questions whose vectors are
given (an embedder that looks them up), so the times are the index's. Recall@10 compares
each backend's top 10 (dense, and hybrid) with an exact search's: SQLite's, or with
`--no-sqlite` PostgreSQL's exact one. `--ef-search` repeats the HNSW searches at other
breadths (recall against time). The first SQLite search of a fresh `Index` loads the
dense view: timed apart.

Part 2 (quality) indexes stackfaq and cnil_fr once in SQLite with the real embedder (kept in
a cache folder between runs), copies them into PostgreSQL (`knowledge.index_copy`, no
embedding) and scores R@1/R@5/MRR@10 per mode on both.

    python bench/index_scale.py [--sizes 10000,100000] [--queries 100] [--quality stackfaq,cnil_fr]
                                [--index-url postgresql://…]   (default: a pgvector server of its own)
                                [--load row|bulk] [--memory 1GB] [--no-sqlite] [--ef-search 100,400]

`--load bulk` fills PostgreSQL as `switchboard index copy` fills an empty index
(`PgIndex.bulk_load`: rows first, then the HNSW and GIN indexes built once) and reports the
index builds' time apart; it is how the 1M-chunk figures were measured.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere, without installing the package

import numpy as np  # noqa: E402

from knowledge import index_pg_schema, lexical  # noqa: E402
from knowledge.documents import Chunk, Document  # noqa: E402
from knowledge.index import Index  # noqa: E402
from knowledge.index_pg import PgIndex  # noqa: E402
from knowledge.retrieval import Retriever  # noqa: E402

DIM = 384
CLUSTER = 50
VOCABULARY = 20_000
# Zipf ranks left out, as stop words are: with them, the commonest "term" sits in every chunk
# and every query scores BM25 over the whole index; without, it is in ~5% of chunks.
STOP_RANKS = 100
BATCH = 400  # chunks per put (one transaction), 4 chunks a document
EVAL_DIR = ROOT.parent / "shared" / "eval"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "switchboard-bench"


class GivenVectors:
    """An embedder whose query vectors are given; passages (only the language space asks) are random."""

    name, dim = "bench/random", DIM

    def __hash__(self) -> int:  # crosslingual.space_for caches by embedder: one space per run
        return 0

    def __eq__(self, other) -> bool:
        return isinstance(other, GivenVectors)

    def __init__(self, queries: dict[str, np.ndarray]):
        self.queries = queries
        self.rng = np.random.default_rng(7)

    def passages(self, texts):
        return unit(self.rng.standard_normal((len(texts), DIM)))

    def query(self, text):
        return self.queries[text] if text in self.queries else self.passages([text])[0]


def unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)).astype(np.float32)


class Corpus:
    """Clustered unit vectors and Zipf-distributed words, reproducible from a seed."""

    def __init__(self, size: int, seed: int = 1):
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.centres = unit(self.rng.standard_normal((size // CLUSTER + 1, DIM)))
        weights = 1.0 / np.arange(STOP_RANKS + 1, STOP_RANKS + VOCABULARY + 1)
        self.word_p = weights / weights.sum()

    def words(self, n: int) -> list[str]:
        return [f"w{i}" for i in self.rng.choice(VOCABULARY, n, p=self.word_p)]

    def vectors(self, start: int, n: int, noise: float = 0.75) -> np.ndarray:
        centres = self.centres[np.arange(start, start + n) // CLUSTER]
        return unit(centres + noise * self.rng.standard_normal((n, DIM)) / np.sqrt(DIM))

    def batches(self) -> Iterator[tuple[list, list]]:
        for start in range(0, self.size, BATCH):
            n = min(BATCH, self.size - start)
            vectors = self.vectors(start, n)
            items, terms = [], []
            for d in range(0, n, 4):
                doc_id = f"d{start + d}"
                document = Document(id=doc_id, source="bench", title=" ".join(self.words(5)), text="", language="en")
                chunks = [Chunk(f"{doc_id}#{k}", doc_id, "bench", k, "", " ".join(self.words(60)))
                          for k in range(min(4, n - d))]
                items.append((document, chunks, [f"h{doc_id}-{c.ordinal}" for c in chunks], vectors[d:d + len(chunks)], None))
                terms += [lexical.chunk_terms(document.title, c.heading, c.text) for c in chunks]
            yield items, terms


def load(index, corpus: Corpus) -> float:
    """Chunks/s of `put`."""
    spent = 0.0
    for items, terms in corpus.batches():
        started = time.perf_counter()
        index.put(items, "bench/random", terms)
        spent += time.perf_counter() - started
    return corpus.size / spent


def questions(corpus: Corpus, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(99)
    picks = rng.choice(corpus.size, n, replace=False)
    found: dict[str, np.ndarray] = {}
    for pick in picks:  # a question near a chunk's cluster, with three of the corpus's words
        centre = corpus.centres[pick // CLUSTER]
        text = " ".join(corpus.words(3))
        while text in found:
            text += " " + corpus.words(1)[0]
        found[text] = unit(centre + 1.0 * rng.standard_normal(DIM) / np.sqrt(DIM))
    return found


def timed(retriever: Retriever, queries: dict[str, np.ndarray], mode: str) -> tuple[dict, dict[str, list[str]]]:
    times, tops = [], {}
    for text in queries:
        started = time.perf_counter()
        hits = retriever.search(text, k=10, mode=mode, language="en")
        times.append((time.perf_counter() - started) * 1000)
        tops[text] = [h.stored.chunk.id for h in hits]
    times.sort()
    return {"p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1)}, tops


def recall(tops: dict[str, list[str]], exact: dict[str, list[str]]) -> float:
    return round(float(np.mean([len(set(tops[q]) & set(exact[q])) / max(len(exact[q]), 1) for q in exact])), 4)


def bulk(index: PgIndex, corpus: Corpus, memory: str) -> tuple[float, float]:
    """Chunks/s of `put` inside a bulk load, and the seconds its index builds take after."""
    with index.bulk_load(memory):
        rate = load(index, corpus)
        loaded = time.perf_counter()
    return rate, time.perf_counter() - loaded


def scale(size: int, n_queries: int, url: str, mode: str = "row", memory: str = "1GB",
          sqlite_too: bool = True, ef_searches: tuple[int, ...] = ()) -> dict:
    corpus = Corpus(size)
    queries = questions(corpus, n_queries)
    embedder = GivenVectors(queries)
    result: dict = {"chunks": size}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        sqlite = None
        if sqlite_too:
            sqlite = Index(Path(tmp) / "index.sqlite3")
            result["sqlite_put_chunks_per_s"] = round(load(sqlite, Corpus(size)))
            sqlite.close()
            sqlite = Index(Path(tmp) / "index.sqlite3")
            started = time.perf_counter()
            sqlite.dense_view()
            result["sqlite_dense_view_load_s"] = round(time.perf_counter() - started, 2)
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        index_pg_schema.migrate(url, schema)
        try:
            pg = PgIndex(url, schema)
            if mode == "bulk":
                rate, build = bulk(pg, Corpus(size), memory)
                result["pg_bulk_put_chunks_per_s"] = round(rate)
                result["pg_bulk_index_build_s"] = round(build, 1)
                result["pg_bulk_chunks_per_s"] = round(size / (size / rate + build))
            else:
                result["pg_put_chunks_per_s"] = round(load(pg, Corpus(size)))
            print(f"  {size} loaded: {result}", flush=True)
            pg_exact = PgIndex(url, schema, search="exact")
            result["pg_bytes"] = pg.stats()["bytes"]
            backends = ([("sqlite", sqlite)] if sqlite is not None else []) + [("pg_exact", pg_exact), ("pg_hnsw", pg)]
            exact: dict[str, dict[str, list[str]]] = {}

            def measure(name: str, index, search: str) -> None:
                figures, tops = timed(Retriever(index, embedder), queries, search)
                exact.setdefault(search, tops)  # the first backend's: an exact search
                figures["recall@10_vs_exact"] = recall(tops, exact[search])
                result[f"{search}_{name}"] = figures
                print(f"  {size} {search} {name}: {figures}", flush=True)

            for search in ("dense", "hybrid"):
                for name, index in backends:
                    measure(name, index, search)
            for ef in ef_searches:  # HNSW's breadth against its recall
                wider = PgIndex(url, schema, ef_search=ef)
                for search in ("dense", "hybrid"):
                    measure(f"pg_hnsw_ef{ef}", wider, search)
                wider.close()
            pg.close()
            pg_exact.close()
        finally:
            index_pg_schema.drop(url, schema)
        if sqlite is not None:
            sqlite.close()
    return result


def quality(name: str, url: str) -> dict:
    from knowledge.embeddings import E5Embedder
    from knowledge.evaluation import JsonlCorpus, read_jsonl, score
    from knowledge.index_copy import copy_index
    from knowledge.ingest import Ingestor
    from knowledge.retrieval import documents_in_order

    folder = EVAL_DIR / name
    corpus = read_jsonl(folder / "corpus.jsonl", ("id",))
    queries = read_jsonl(folder / "queries.jsonl", ("query", "relevant"))
    embedder = E5Embedder()
    path = CACHE / f"{name}.sqlite3"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        building = path.with_suffix(".building")
        index = Index(building)
        Ingestor(index, embedder).ingest(JsonlCorpus(corpus))
        index.close()
        building.rename(path)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    index_pg_schema.migrate(url, schema)
    vectors: dict[str, np.ndarray] = {}

    class Cached:  # each query embedded once for both backends and every mode
        name, dim = embedder.name, embedder.dim
        passages = staticmethod(embedder.passages)

        @staticmethod
        def query(text):
            if text not in vectors:
                vectors[text] = embedder.query(text)
            return vectors[text]
    sqlite, pg = Index(path), None
    try:
        pg = PgIndex(url, schema)
        copy_index(path, pg)
        result = {"chunks": sqlite.stats()["chunks"]}
        golds = [set(map(str, q["relevant"])) for q in queries]
        for mode in ("lexical", "dense", "hybrid"):
            for backend, index in (("sqlite", sqlite), ("pg", pg)):
                retriever = Retriever(index, Cached())
                rankings = [documents_in_order(retriever.search(str(q["query"]), k=30, mode=mode)) for q in queries]
                result[f"{mode}_{backend}"] = score(rankings, golds).to_dict()
            print(f"  {name} {mode}: sqlite {result[f'{mode}_sqlite']} pg {result[f'{mode}_pg']}", flush=True)
        return result
    finally:
        sqlite.close()
        if pg is not None:
            pg.close()
        index_pg_schema.drop(url, schema)


@contextlib.contextmanager
def server(url: str) -> Iterator[str]:
    if url:
        yield url
        return
    from tests.pgvector_service import pgvector_server

    with pgvector_server() as started:
        yield started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--quality", default="stackfaq,cnil_fr", help="eval sets ('' to skip)")
    parser.add_argument("--index-url", default="")
    parser.add_argument("--load", choices=("row", "bulk"), default="row",
                        help="PostgreSQL: put into the live indexes (as a sync does), or a bulk load "
                             "(as `index copy` into an empty index: HNSW and GIN built once at the end)")
    parser.add_argument("--memory", default="1GB", help="maintenance_work_mem of a bulk load's index builds")
    parser.add_argument("--no-sqlite", action="store_true",
                        help="PostgreSQL only (recall is then measured against its exact search)")
    parser.add_argument("--ef-search", default="", help="then HNSW again at these hnsw.ef_search values "
                        "(e.g. 100,400,800; the index's own is knowledge/index_pg.py EF_SEARCH)")
    args = parser.parse_args()
    results: dict = {"scale": [], "quality": {}}
    with server(args.index_url) as url:
        for size in filter(None, (s.strip() for s in args.sizes.split(","))):
            print(f"scale {size} chunks", flush=True)
            results["scale"].append(scale(int(size), args.queries, url, args.load, args.memory, not args.no_sqlite,
                                          tuple(int(e) for e in args.ef_search.split(",") if e.strip())))
        for name in filter(None, (s.strip() for s in args.quality.split(","))):
            print(f"quality {name}", flush=True)
            results["quality"][name] = quality(name, url)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
