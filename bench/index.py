"""Index benchmark: ingestion throughput on the real pipeline, then query latency at scale.

Part 1 ingests the bundled sample knowledge base (`bot.runtime.SAMPLE_SOURCES`) into a
fresh throwaway index with the real `Ingestor` and `E5Embedder`, then ingests it again
unchanged: the second pass should cost a small fraction of the first (fingerprints match).

Part 2 measures `Retriever.search` on indexes of 10k and 100k chunks. Embedding that many
real passages would take hours on a small machine (e5 costs ~100 ms a passage), so the
chunks are synthetic: real chunks of the sample KB and of the shared eval corpora, their
sentences reshuffled, thinned and given other countries, product names and numbers, so
BM25 postings have a real vocabulary with a long tail. Only a pool of real passages (and
their documents' titles) is embedded; each synthetic chunk gets the vector of the passage
it was made from plus small gaussian noise, re-normalized, and each synthetic document its
source article's title vector, treated the same way. Chunks go in through `Index.put` in
batches, with index terms computed exactly as `knowledge/ingest.py` does. The real sample
questions are then searched in each mode with their vectors computed beforehand, so the
times are the index's; embedding a query is timed on its own (it costs the same at any
size), and the first query of a freshly opened index (it loads the dense view) apart.
The last line is one JSON object with every figure, for scripts.

    python bench/index.py [--sizes 10000,100000] [--queries 200] [--pool 1000]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere, without installing the package

import numpy as np  # noqa: E402

from bot.runtime import SAMPLE_DIR, SAMPLE_SOURCES  # noqa: E402
from knowledge import lexical  # noqa: E402
from knowledge.chunking import chunk_document  # noqa: E402
from knowledge.connectors.folder import FolderConnector  # noqa: E402
from knowledge.documents import Chunk, Document  # noqa: E402
from knowledge.embeddings import E5Embedder  # noqa: E402
from knowledge.evaluation import read_jsonl  # noqa: E402
from knowledge.index import Index  # noqa: E402
from knowledge.ingest import Ingestor  # noqa: E402
from knowledge.retrieval import Retriever  # noqa: E402

MODES = ("hybrid", "lexical", "dense")
QUESTIONS = ROOT / "tests" / "data" / "sample_questions.jsonl"
# (folder, file, language) of the shared eval corpora whose articles seed synthetic chunks.
EVAL_CORPORA = (("tau2_banking", "documents.jsonl", "en"), ("stackfaq", "corpus.jsonl", "en"),
                ("cnil_fr", "corpus.jsonl", "fr"))
NOISE = 0.01  # per-dimension sigma: a noise vector of norm ~0.2, cosine ~0.98 to its pool vector
POOL_MAX_CHARS = 600  # characters of a pool passage the embedder reads (cost grows with it)
BATCH_DOCUMENTS = 400  # documents per Index.put (one transaction)
MAX_CHUNKS_PER_DOCUMENT = 4
SEED = 20240607

COUNTRIES = {
    "en": "France Belgium Luxembourg Germany Spain Italy Switzerland Portugal Austria Netherlands Ireland "
          "Denmark Sweden Norway Finland Poland Czechia Slovakia Hungary Greece Croatia Slovenia Romania "
          "Bulgaria Estonia Latvia Lithuania Malta Cyprus Iceland Monaco Andorra Canada Morocco Tunisia".split(),
    "fr": "France Belgique Luxembourg Allemagne Espagne Italie Suisse Portugal Autriche Pays-Bas Irlande "
          "Danemark Suède Norvège Finlande Pologne Tchéquie Slovaquie Hongrie Grèce Croatie Slovénie Roumanie "
          "Bulgarie Estonie Lettonie Lituanie Malte Chypre Islande Monaco Andorre Canada Maroc Tunisie".split(),
}
SYLLABLES = "ka lo mi ra ve to sa ni bel cor dun fa gri hal jo lum mar nor pel qui ros sil tan ur vo wen zi".split()
PRODUCT_KINDS = {"en": "lamp pendant sconce lantern bulb shade cable dimmer".split(),
                 "fr": "lampe suspension applique lanterne ampoule abat-jour câble variateur".split(),
                 "tau2_banking": "card account loan plan savings checking".split(),
                 "stackfaq": "plan account app device subscription".split()}
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
SENTENCE = re.compile(r"(?<=[.!?。！？])\s+")


# -- measuring helpers -------------------------------------------------------------------
def disk_bytes(path: Path) -> int:
    """The index's bytes on disk: the database file with its write-ahead log."""
    files = (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
    return sum(f.stat().st_size for f in files if f.exists())


def proc_status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmHWM = peak RSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else 0.0


class QueryVectors:
    """An embedder whose query vectors are computed beforehand (`embed_questions`), so search
    timings measure the index; the embedding cost is measured and shown on its own."""

    def __init__(self, embedder: E5Embedder):
        self.embedder = embedder
        self.name, self.dim = embedder.name, embedder.dim
        self.vectors: dict[str, np.ndarray] = {}

    def passages(self, texts):
        return self.embedder.passages(texts)

    def query(self, text: str) -> np.ndarray:
        if text not in self.vectors:
            self.vectors[text] = self.embedder.query(text)
        return self.vectors[text]


def embed_questions(embedder: QueryVectors, questions: list[dict]) -> dict:
    """Embed each question afresh (as a live query would be) and keep the vectors: ms p50/p95."""
    timings = []
    for question in questions:
        started = time.perf_counter()
        embedder.vectors[question["query"]] = embedder.embedder.query(question["query"])
        timings.append((time.perf_counter() - started) * 1000)
    return {"n": len(timings), "p50": percentile(timings, 50), "p95": percentile(timings, 95)}


# -- part 1: ingestion on the real pipeline ----------------------------------------------
def ingest_sample(index: Index, embedder: E5Embedder) -> tuple[float, list]:
    started = time.perf_counter()
    reports = [Ingestor(index, embedder).ingest(FolderConnector(SAMPLE_DIR / relative, name))
               for name, relative in SAMPLE_SOURCES]
    return time.perf_counter() - started, reports


def measure_ingestion(tmp: Path) -> dict:
    embedder = E5Embedder()
    started = time.perf_counter()
    embedder.query("warm up")  # loads the model: a one-off cost, kept out of the throughput
    model_load = time.perf_counter() - started
    index = Index(tmp / "sample.sqlite3")
    try:
        first, reports = ingest_sample(index, embedder)
        stats = index.stats()
        size = disk_bytes(index.path)
        again, second_reports = ingest_sample(index, embedder)
    finally:
        index.close()
    embedded = sum(r.chunks_embedded for r in reports)
    return {"documents": stats["documents"], "chunks": stats["chunks"], "chunks_embedded": embedded,
            "model_load_seconds": round(model_load, 2), "seconds": round(first, 2),
            "chunks_per_second": round(stats["chunks"] / first, 2), "index_bytes": size,
            "bytes_per_chunk": round(size / max(stats["chunks"], 1)),
            "reingest_seconds": round(again, 3), "reingest_ratio": round(again / first, 4),
            "reingest_unchanged": sum(r.unchanged for r in second_reports),
            "reingest_embedded": sum(r.chunks_embedded for r in second_reports)}


# -- part 2: synthetic indexes -----------------------------------------------------------
def real_documents(eval_dir: Path) -> list[Document]:
    """The sample KB's documents and the shared eval corpora's articles."""
    documents = [d for name, relative in SAMPLE_SOURCES
                 for d in FolderConnector(SAMPLE_DIR / relative, name).load() if isinstance(d, Document)]
    for folder, file, language in EVAL_CORPORA:
        path = eval_dir / folder / file
        if path.exists():
            documents += [Document(str(r["id"]), folder, str(r.get("title", "")), str(r.get("text", "")),
                                   language=language) for r in read_jsonl(path, ("id",))]
    return documents


def pick_seeds(documents: list[Document], pool: int, rng: random.Random) -> list[tuple[Document, Chunk]]:
    """Every chunk of the sample KB, then eval-corpus chunks at random up to `pool`."""
    sample_names = {name for name, _ in SAMPLE_SOURCES}
    chunks = [(d, c) for d in documents for c in chunk_document(d) if len(c.text) >= 80]
    sample = [pair for pair in chunks if pair[0].source in sample_names]
    others = [pair for pair in chunks if pair[0].source not in sample_names]
    return (sample + rng.sample(others, min(len(others), max(pool - len(sample), 0))))[:pool]


def embed_pool(seeds: list[tuple[Document, Chunk]]) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """Vectors of the seed passages and of their documents' titles, and the seconds it took."""
    embedder = E5Embedder(max_chars=POOL_MAX_CHARS)
    embedder.query("warm up")
    titles = sorted({d.title for d, _ in seeds if d.title.strip()})
    started = time.perf_counter()
    vectors = embedder.passages([c.embedding_text(d.title) for d, c in seeds])
    title_vectors = dict(zip(titles, embedder.passages(titles)))
    return vectors, title_vectors, time.perf_counter() - started


class Synthesizer:
    """Makes support articles from real chunks with other countries, products and numbers.

    Deterministic for a seed: the first N chunks are the same whatever the target size.
    """

    def __init__(self, seeds: list[tuple[Document, Chunk]], vectors: np.ndarray, titles: dict[str, np.ndarray],
                 seed: int = SEED):
        self.rng = random.Random(seed)
        self.noise = np.random.default_rng(seed)
        self.vectors = vectors
        self.titles = titles
        groups: dict[tuple[str, str], list[int]] = {}
        for position, (document, _) in enumerate(seeds):
            groups.setdefault((document.source, document.id), []).append(position)
        self.groups = list(groups.values())
        self.seeds = seeds
        self.by_language: dict[str, list[int]] = {}
        for position, (document, _) in enumerate(seeds):
            self.by_language.setdefault(document.language or "en", []).append(position)
        self.products = [self._product_name() for _ in range(3000)]
        known = sorted({c for names in COUNTRIES.values() for c in names}, key=len, reverse=True)
        self.country = re.compile(r"\b(" + "|".join(map(re.escape, known)) + r")\b")

    def _product_name(self) -> str:
        word = "".join(self.rng.choice(SYLLABLES) for _ in range(self.rng.randint(2, 3))).capitalize()
        return f"{word} {self.rng.choice('ABCKMRSXZ')}{self.rng.randint(100, 9999)}"

    def document(self, number: int) -> tuple[Document, list[Chunk], np.ndarray, np.ndarray | None]:
        positions = self.rng.choice(self.groups)[:MAX_CHUNKS_PER_DOCUMENT]
        base = self.seeds[positions[0]][0]
        language = base.language or "en"
        product = self.rng.choice(self.products)
        country = self.rng.choice(COUNTRIES.get(language, COUNTRIES["en"]))
        kind = self.rng.choice(PRODUCT_KINDS.get(base.source) or PRODUCT_KINDS.get(language, PRODUCT_KINDS["en"]))
        doc_id = f"syn-{number}"
        chunks = [Chunk(f"{doc_id}#{i}", doc_id, f"syn-{base.source}", i, self.seeds[p][1].heading,
                        self._rewrite(self.seeds[p][1].text, language, product, kind, country))
                  for i, p in enumerate(positions)]
        document = Document(doc_id, f"syn-{base.source}", f"{base.title} — {kind} {product}",
                            "\n\n".join(c.text for c in chunks), url=f"https://help.example/{doc_id}",
                            language=language, visibility="internal" if self.rng.random() < 0.1 else "public")
        title = self.titles.get(base.title)
        title = None if title is None else self._noisy(title[None, :])[0]
        return document, chunks, self._noisy(self.vectors[positions]), title

    def _rewrite(self, text: str, language: str, product: str, kind: str, country: str) -> str:
        units = [u for line in text.splitlines() for u in SENTENCE.split(line) if u.strip()]
        if len(units) > 3:
            units = [u for u in units if self.rng.random() > 0.2] or units[:1]
        if self.rng.random() < 0.3:  # a sentence from another article of the same language
            other = self.seeds[self.rng.choice(self.by_language[language])][1].text
            units.insert(self.rng.randrange(len(units) + 1), self.rng.choice(other.splitlines() or [other]))
        text = "\n".join(units)
        text = self.country.sub(lambda _: country if self.rng.random() < 0.7 else self.rng.choice(
            COUNTRIES.get(language, COUNTRIES["en"])), text)
        text = NUMBER.sub(lambda m: self._number(m.group()), text)
        if self.rng.random() < 0.5:
            text = f"{kind.capitalize()} {product}: {text}"
        return text

    def _number(self, token: str) -> str:
        if self.rng.random() < 0.5:
            return token  # keep half: real KBs repeat prices and delays
        digits = sum(ch.isdigit() for ch in token)
        return str(self.rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits - 1))

    def _noisy(self, vectors: np.ndarray) -> np.ndarray:
        vectors = vectors + self.noise.normal(0.0, NOISE, vectors.shape)
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def batches(synth: Synthesizer, size: int) -> Iterator[tuple[list, list]]:
    """(items, terms) for `Index.put`, `BATCH_DOCUMENTS` documents at a time, `size` chunks in all."""
    made, number = 0, 0
    while made < size:
        items, terms = [], []
        for _ in range(BATCH_DOCUMENTS):
            document, chunks, vectors, title = synth.document(number)
            number += 1
            chunks, vectors = chunks[: size - made], vectors[: size - made]
            made += len(chunks)
            hashes = [c.content_hash(document.title) for c in chunks]
            items.append((document, chunks, hashes, vectors, title))  # Index.put's item, as ingest.py makes it
            # The same call as knowledge/ingest.py's Ingestor._flush:
            terms += [lexical.chunk_terms(document.title, c.heading, c.text, document.language or "en") for c in chunks]
            if made >= size:
                break
        yield items, terms


def build_index(path: Path, size: int, synth: Synthesizer, model: str) -> dict:
    index = Index(path)
    prepare = insert = 0.0
    started = time.perf_counter()
    try:
        for items, terms in batches(synth, size):
            prepared = time.perf_counter()
            prepare += prepared - started
            index.put(items, model, terms)
            started = time.perf_counter()
            insert += started - prepared
        stats = index.stats()
    finally:
        index.close()
    size_on_disk = disk_bytes(path)
    return {"documents": stats["documents"], "chunks": stats["chunks"],
            "generate_and_terms_seconds": round(prepare, 1), "put_seconds": round(insert, 1),
            "put_chunks_per_second": round(stats["chunks"] / max(insert, 1e-9)),
            "index_bytes": size_on_disk, "bytes_per_chunk": round(size_on_disk / max(stats["chunks"], 1))}


def search_ms(retriever: Retriever, question: dict, mode: str) -> float:
    started = time.perf_counter()
    retriever.search(question["query"], mode=mode, language=question.get("language", ""))
    return (time.perf_counter() - started) * 1000


def measure_queries(path: Path, questions: list[dict], embedder: QueryVectors) -> dict:
    loads = []
    for _ in range(3):  # the view load on its own, each time in a fresh Index (median: the machine is shared)
        index = Index(path)
        try:
            started = time.perf_counter()
            view = index.dense_view()
            loads.append((time.perf_counter() - started) * 1000)
            view_rows, view_mb = len(view.rowids), round(view.matrix.nbytes / 2 ** 20, 1)
        finally:
            index.close()
        del view
    view_ms = float(np.median(loads))
    index = Index(path)  # a fresh Index: its first search loads the dense view again
    try:
        retriever = Retriever(index, embedder)
        first_ms = search_ms(retriever, questions[0], "hybrid")
        timings: dict[str, list[float]] = {mode: [] for mode in MODES}
        for n, question in enumerate(questions):
            for mode in MODES[n % 3:] + MODES[: n % 3]:  # rotate the order: no mode always runs first
                timings[mode].append(search_ms(retriever, question, mode))
    finally:
        index.close()
    result = {"dense_view_load_ms": round(view_ms, 1), "dense_view_rows": view_rows, "dense_view_mb": view_mb,
              "first_query_ms": round(first_ms, 1)}
    return result | {mode: {"p50": percentile(timings[mode], 50), "p95": percentile(timings[mode], 95)}
                     for mode in MODES}


# -- output ------------------------------------------------------------------------------
def print_ingestion(r: dict) -> None:
    print("\n1. Ingestion of the bundled sample KB (real pipeline: FolderConnector → Ingestor → E5Embedder)")
    print(f"  {'documents':<34}{r['documents']:>12}")
    print(f"  {'chunks':<34}{r['chunks']:>12}  ({r['chunks_embedded']} embedded, plus the documents' titles)")
    print(f"  {'model load (not counted) s':<34}{r['model_load_seconds']:>12}")
    print(f"  {'ingestion s':<34}{r['seconds']:>12}")
    print(f"  {'chunks/s':<34}{r['chunks_per_second']:>12}")
    print(f"  {'index bytes on disk (db + WAL)':<34}{r['index_bytes']:>12}")
    print(f"  {'bytes per chunk':<34}{r['bytes_per_chunk']:>12}")
    print(f"  {'re-ingest unchanged s':<34}{r['reingest_seconds']:>12}  "
          f"({r['reingest_unchanged']} documents unchanged, {r['reingest_embedded']} chunks embedded)")
    print(f"  {'re-ingest / first ingest':<34}{r['reingest_ratio']:>12}")


def print_sizes(sizes: dict, pool: dict, embedding: dict) -> None:
    print(f"\n2. Query latency on synthetic indexes: {pool['passages']} real passages and {pool['titles']} titles "
          f"embedded once ({pool['seconds']} s, {pool['texts_per_second']} texts/s, first {POOL_MAX_CHARS} chars);")
    print(f"   each synthetic chunk (and title) = a pool vector + gaussian noise (sigma {NOISE}/dim), re-normalized;")
    print("   text = real sentences recombined with other countries, products, numbers.")
    print(f"   {embedding['n']} searches per mode (sample questions cycled), k=8, OS cache warm. Search times use")
    print("   the question's vector computed beforehand; embedding a query is timed on its own (size-independent):")
    print(f"   query embedding ms p50 {embedding['p50']}, p95 {embedding['p95']} (n {embedding['n']})")
    names = list(sizes)
    print(f"  {'':<36}" + "".join(f"{n:>14}" for n in names))
    rows = [("documents", lambda s: s["build"]["documents"]), ("chunks", lambda s: s["build"]["chunks"]),
            ("build: generate + terms s", lambda s: s["build"]["generate_and_terms_seconds"]),
            ("build: Index.put s", lambda s: s["build"]["put_seconds"]),
            ("Index.put chunks/s", lambda s: s["build"]["put_chunks_per_second"]),
            ("index MB on disk (db + WAL)", lambda s: round(s["build"]["index_bytes"] / 2 ** 20, 1)),
            ("bytes per chunk", lambda s: s["build"]["bytes_per_chunk"]),
            ("dense view rows", lambda s: s["queries"]["dense_view_rows"]),
            ("dense view matrix MB", lambda s: s["queries"]["dense_view_mb"]),
            ("dense view load ms (median of 3)", lambda s: s["queries"]["dense_view_load_ms"]),
            ("first query ms (loads the view)", lambda s: s["queries"]["first_query_ms"])]
    for mode in MODES:
        rows += [(f"{mode} search ms {q}", lambda s, m=mode, q=q: s["queries"][m][q]) for q in ("p50", "p95")]
        rows.append((f"{mode} + embedding ms p50 (sum)",
                     lambda s, m=mode: round(s["queries"][m]["p50"] + embedding["p50"], 1)))
    rows.append(("peak RSS MB (process so far)", lambda s: s["peak_rss_mb"]))
    for label, get in rows:
        print(f"  {label:<36}" + "".join(f"{get(sizes[n]):>14}" for n in names))


def ratios(sizes: dict) -> dict:
    """Search latency and index size at the largest index divided by the smallest."""
    names = sorted(sizes, key=int)
    small, large = sizes[names[0]], sizes[names[-1]]
    out = {m: {q: round(large["queries"][m][q] / (small["queries"][m][q] or 1e-9), 2) for q in ("p50", "p95")}
           for m in MODES}
    out["first_query"] = round(large["queries"]["first_query_ms"] / small["queries"]["first_query_ms"], 2)
    out["index_bytes"] = round(large["build"]["index_bytes"] / small["build"]["index_bytes"], 2)
    return {"of": f"{names[-1]}/{names[0]}", **out}


def print_ratios(r: dict) -> None:
    print(f"\n  ratios {r['of']} chunks: " + "; ".join(f"{m} p50 ×{r[m]['p50']} p95 ×{r[m]['p95']}" for m in MODES)
          + f"; first query ×{r['first_query']}; index size ×{r['index_bytes']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated chunk counts of the synthetic indexes")
    parser.add_argument("--queries", type=int, default=200, help="searches per mode and size (questions cycled)")
    parser.add_argument("--pool", type=int, default=1000, help="real passages embedded for the synthetic vectors")
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    questions = read_jsonl(QUESTIONS, ("query",))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as folder:
        tmp = Path(folder)
        ingestion = measure_ingestion(tmp)
        print_ingestion(ingestion)
        seeds = pick_seeds(real_documents(args.eval_dir), args.pool, random.Random(SEED))
        vectors, titles, pool_seconds = embed_pool(seeds)
        pool = {"passages": len(seeds), "titles": len(titles), "seconds": round(pool_seconds, 1),
                "texts_per_second": round((len(seeds) + len(titles)) / pool_seconds, 2),
                "noise_sigma": NOISE, "max_chars": POOL_MAX_CHARS}
        embedder = QueryVectors(E5Embedder())
        asked = list(itertools.islice(itertools.cycle(questions), args.queries))
        embedding = embed_questions(embedder, asked)
        results: dict[str, dict] = {}
        for size in sizes:
            path = tmp / f"synthetic-{size}.sqlite3"
            build = build_index(path, size, Synthesizer(seeds, vectors, titles), E5Embedder.name)
            results[str(size)] = {"build": build, "queries": measure_queries(path, asked, embedder),
                                  "peak_rss_mb": proc_status_mb("VmHWM")}
            print(f"  … {size} chunks measured", file=sys.stderr, flush=True)
        print_sizes(results, pool, embedding)
        scale = ratios(results) if len(results) > 1 else {}
        if scale:
            print_ratios(scale)
    peak = proc_status_mb("VmHWM")
    load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(f"\n  process peak RSS (VmHWM): {peak} MB; machine load average (1 min) at start/end: {load[0]} / {load[1]} "
          f"on {os.cpu_count()} cores (other work shares them: absolute times are upper bounds); "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} (the embedder's OpenMP threads)")
    print(json.dumps({"ingestion": ingestion, "pool": pool, "query_embedding_ms": embedding, "sizes": results,
                      "ratios": scale, "peak_rss_mb": peak, "load_average": load, "cpus": os.cpu_count(),
                      "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "")}))


if __name__ == "__main__":
    main()
