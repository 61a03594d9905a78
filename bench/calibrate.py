"""Fits the answer confidence (bot/evidence.py) and checks it on data it never saw.

The engine declines below a profile's `min_confidence` (0.5 by default). The confidence is
a logistic regression over the evidence of the best passage (`relevance`, `coverage`,
`centred`; see bot/evidence.py), fitted here on the sample knowledge:

- answerable: the even rows of tests/data/sample_questions.jsonl and the single or first
  turns of the dev split of tests/data/conversations.jsonl that expect an answer;
- not answerable: the first 250 questions of ../shared/eval/clinc_oos and the dev split's
  turns that expect a decline (uncovered questions, off-topic turns taken alone);

answerable questions weigh 3 to 1, since a false decline of a covered question costs
more than a decline of an uncovered one that a human then answers. It then prints the
share of answerable and unanswerable questions above 0.5 on the held-back data (the odd
rows, the holdout split, the other 250 clinc_oos questions), for the fitted weights and
for those in bot/evidence.py now. The last line is JSON; paste `weights` into
bot/evidence.py when they are better.

    python bench/calibrate.py [--index PATH] [--eval-dir ../shared/eval]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.answers import build_index, read  # noqa: E402
from bot import evidence, smalltalk  # noqa: E402
from knowledge.embeddings import E5Embedder  # noqa: E402
from knowledge.language import detect  # noqa: E402
from knowledge.retrieval import Retriever  # noqa: E402

FEATURES = ("relevance", "coverage", "centred", "cjk", "cross", "cjk_cross", "fr_fr")
POSITIVE_WEIGHT = 3.0
LOOKALIKE_WEIGHT = 1.0  # an uncovered question about the store (a look-alike) weighs like an answerable one


def split_turns(cases: list[dict], split: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(question, language) pairs that stand alone: answerable, and not answerable."""
    answerable, not_answerable = [], []
    for case in cases:
        if case["split"] != split:
            continue
        for n, turn in enumerate(case["turns"]):
            text, expect = turn.get("user"), turn["expect"]
            if not text or (n and case["class"] in ("follow_up", "cross_lingual")) or smalltalk.kind(text):
                continue
            if case["class"] == "off_topic_after" and n == 0:
                continue
            pair = (text, expect.get("language") or case["language"])
            (answerable if expect.get("answered") else not_answerable).append(pair)
    return answerable, not_answerable


def features(retriever: Retriever, question: str, language: str) -> list[float]:
    hits = retriever.search(question, public_only=True, k=5, language=language or detect(question)[0] or "en")
    return [evidence.features(hits[0], language)[f] for f in FEATURES] if hits else [0.0] * len(FEATURES)


def fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray, l2: float = 0.01) -> np.ndarray:
    """Weighted, L2-regularised logistic regression by Newton's method; the bias last."""
    a = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(a.shape[1])
    penalty = l2 * np.eye(len(w))
    penalty[-1, -1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-a @ w))
        gradient = a.T @ (weights * (p - y)) + penalty @ w
        hessian = (a * (weights * p * (1 - p))[:, None]).T @ a + penalty + 1e-9 * np.eye(len(w))
        w -= np.linalg.solve(hessian, gradient)
    return w


def rates(w: np.ndarray, x: np.ndarray, y: np.ndarray, store: np.ndarray) -> dict[str, float]:
    """Shares above 0.5: answerable questions, clinc_oos ones, and uncovered questions about the store."""
    p = 1.0 / (1.0 + np.exp(-(np.hstack([x, np.ones((len(x), 1))]) @ w)))
    return {"answerable_above": round(float((p[y == 1] >= 0.5).mean()), 3),
            "clinc_above": round(float((p[(y == 0) & ~store] >= 0.5).mean()), 3),
            "store_uncovered_above": round(float((p[(y == 0) & store] >= 0.5).mean()), 3)}


def dataset(retriever: Retriever, answerable: list, clinc: list, store: list
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and which rows are uncovered questions about the store."""
    x = np.array([features(retriever, q, lang) for q, lang in answerable + clinc + store])
    y = np.array([1] * len(answerable) + [0] * (len(clinc) + len(store)))
    return x, y, np.array([False] * (len(answerable) + len(clinc)) + [True] * len(store))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval-dir", default=str(ROOT.parent / "shared" / "eval"))
    parser.add_argument("--index", default="", help="reuse (or build once at) this sample index path")
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory(prefix="switchboard-calibrate-")
    embedder = E5Embedder()
    index = build_index(Path(args.index or Path(scratch.name) / "index.sqlite3"), embedder)
    retriever = Retriever(index, embedder)
    sample = [(r["query"], r["language"]) for r in read(ROOT / "tests" / "data" / "sample_questions.jsonl")]
    cases = read(ROOT / "tests" / "data" / "conversations.jsonl")
    oos = [(r["query"], "en") for r in read(Path(args.eval_dir) / "clinc_oos" / "queries.jsonl")]
    dev_yes, dev_no = split_turns(cases, "dev")
    held_yes, held_no = split_turns(cases, "holdout")
    x, y, store = dataset(retriever, sample[::2] + dev_yes, oos[:250], dev_no)
    xt, yt, store_t = dataset(retriever, sample[1::2] + held_yes, oos[250:], held_no)
    w = fit(x, y, np.where(y == 1, POSITIVE_WEIGHT, np.where(store, LOOKALIKE_WEIGHT, 1.0)))
    now = np.array([evidence.WEIGHTS.get(f, 0.0) for f in FEATURES] + [evidence.BIAS])
    figures = {"features": FEATURES, "weights": [round(float(v), 3) for v in w],
               "train_n": len(y), "test_n": len(yt),
               "fitted": {"train": rates(w, x, y, store), "test": rates(w, xt, yt, store_t)},
               "current": {"train": rates(now, x, y, store), "test": rates(now, xt, yt, store_t)}}
    for name in ("fitted", "current"):
        print(f"{name:8} train {figures[name]['train']}  test {figures[name]['test']}")
    print("weights", dict(zip([*FEATURES, "bias"], figures["weights"])))
    index.close()
    scratch.cleanup()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
