"""Retrieval benchmark: lexical, dense and hybrid search on the public evaluation sets.

For each set (`corpus.jsonl` + `queries.jsonl` under the shared eval folder) the corpus is
indexed once in a throwaway index (`knowledge.evaluation.RetrievalEval`), then every query
is searched in each mode and scored at document level: recall@1, recall@5 and MRR@10.
The table also shows the BM25 reference figures of the eval README, hybrid's ratio to
the best single method, and hybrid on each half of the queries (even and odd positions):
tune on one half and read the other, so that a gain is not fitted to these queries. The
last line is one JSON object with every figure, for scripts.

    python bench/retrieval.py [--sets stackfaq,cnil_fr] [--eval-dir ../shared/eval]
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere, without installing the package

from knowledge.embeddings import E5Embedder  # noqa: E402
from knowledge.evaluation import RetrievalEval, read_jsonl  # noqa: E402

MODES = ("lexical", "dense", "hybrid")
METRICS = ("recall@1", "recall@5", "mrr@10")
HALVES = {"even": 0, "odd": 1}  # queries at even / odd positions of queries.jsonl
# From the eval README: bm25s over whole documents, measured once.
BM25_REFERENCE = {"stackfaq": (0.71, 0.93, 0.80), "cnil_fr": (0.37, 0.70, 0.51)}


class QueryCache:
    """An embedder that embeds each query once: every mode searches the same queries."""

    def __init__(self, embedder: E5Embedder):
        self.embedder = embedder
        self.name, self.dim = embedder.name, embedder.dim
        self.query = functools.cache(embedder.query)

    def passages(self, texts):
        return self.embedder.passages(texts)


def run_set(folder: Path, embedder: QueryCache) -> dict:
    """Index one set's corpus, then score its queries in every mode."""
    corpus = read_jsonl(folder / "corpus.jsonl", ("id",))
    queries = read_jsonl(folder / "queries.jsonl", ("query", "relevant"))
    started = time.perf_counter()
    evaluation = RetrievalEval(corpus, embedder)
    seconds = time.perf_counter() - started
    try:
        chunks = evaluation.index.stats()["chunks"]
        scores = {mode: evaluation.run(queries, mode).to_dict() for mode in MODES}
        halves = {half: evaluation.run(queries[start::2], "hybrid").to_dict() for half, start in HALVES.items()}
    finally:
        evaluation.close()
    return {"documents": len(corpus), "queries": len(queries), "chunks": chunks,
            "index_seconds": round(seconds, 1), "chunks_per_second": round(chunks / seconds, 2), **scores,
            "hybrid_halves": halves}


def ratios(result: dict) -> dict[str, float]:
    """Hybrid divided by the better of lexical and dense, per metric."""
    return {m: round(result["hybrid"][m] / (max(result["lexical"][m], result["dense"][m]) or 1.0), 4)
            for m in METRICS}


def print_table(name: str, result: dict) -> None:
    print(f"\n{name}: {result['documents']} documents, {result['chunks']} chunks, {result['queries']} queries; "
          f"indexed in {result['index_seconds']} s ({result['chunks_per_second']} chunks/s)")
    print(f"  {'method':<22}" + "".join(f"{m:>10}" for m in METRICS))
    reference = BM25_REFERENCE.get(name)
    if reference:
        print(f"  {'BM25 reference':<22}" + "".join(f"{v:>10.3f}" for v in reference))
    for mode in MODES:
        print(f"  {mode:<22}" + "".join(f"{result[mode][m]:>10.3f}" for m in METRICS))
    print(f"  {'hybrid / best single':<22}" + "".join(f"{v:>10.3f}" for v in result["hybrid_ratio"].values()))
    for half, figures in result["hybrid_halves"].items():
        label = f"hybrid, {half} queries"
        print(f"  {label:<22}" + "".join(f"{figures[m]:>10.3f}" for m in METRICS) + f"   (n {figures['n']})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="stackfaq,cnil_fr", help="comma-separated folders of the eval dir")
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--max-chars", type=int, default=E5Embedder().max_chars,
                        help="characters of a chunk the embedder reads (default: the product's; time grows with it)")
    args = parser.parse_args(argv)
    embedder = QueryCache(E5Embedder(max_chars=args.max_chars))
    figures = {}
    for name in filter(None, (s.strip() for s in args.sets.split(","))):
        result = run_set(args.eval_dir / name, embedder)
        result["hybrid_ratio"] = ratios(result)
        result["bm25_reference"] = dict(zip(METRICS, BM25_REFERENCE.get(name, ())))
        print_table(name, result)
        figures[name] = result
    print(json.dumps({"max_chars": args.max_chars, "sets": figures}))


if __name__ == "__main__":
    main()
