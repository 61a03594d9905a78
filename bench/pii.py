"""PII masking benchmark: scores `bot.pii` on the shared labelled messages
(`../shared/security/pii.jsonl` beside the repository, or `--cases FILE`) and times masking.

Prints per-type recall and precision, then recall, precision and F2 (recall weighted) where a found span
and a labelled one match when they share half of the longer one's characters; the share of
`keep` tokens and of negatives (`pii: []`) left intact; every miss and false alarm; and the
time to mask one message (a fresh `Masker` per message, all detectors on) at p50/p95 over
`--runs` passes, and the p95 over messages of each one's median (less sensitive to other
processes on a shared machine). Last line: one JSON object.

    python bench/pii.py [--cases FILE] [--runs 20]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.pii import Masker, evaluate  # noqa: E402

CASES = ROOT.parent / "shared" / "security" / "pii.jsonl"


def mask_times(cases: list[dict], runs: int) -> list[list[float]]:
    """Milliseconds to mask each message, `runs` times over (after one warm-up pass): one list per message."""
    for case in cases:
        Masker().mask(case["text"], case.get("lang", ""))
    times: list[list[float]] = [[] for _ in cases]
    for _ in range(runs):
        for i, case in enumerate(cases):
            began = time.perf_counter()
            Masker().mask(case["text"], case.get("lang", ""))
            times[i].append((time.perf_counter() - began) * 1000)
    return times


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=CASES)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    cases = [json.loads(line) for line in args.cases.read_text(encoding="utf-8").splitlines() if line.strip()]
    score = evaluate(cases)
    per_message = mask_times(cases, args.runs)
    times = [t for message in per_message for t in message]
    medians = [quantile(message, 0.5) for message in per_message]
    for kind, counts in score["types"].items():
        print(f"  {kind:<14} recall {counts['recall']:.3f} of {counts['gold']:<3} "
              f"precision {counts['precision']:.3f} of {counts['found']}")
    for error in score["errors"]:
        print(f"  {error}")
    result = {"cases": len(cases), "spans": score["gold"], "recall": round(score["recall"], 4),
              "precision": round(score["precision"], 4), "f2": round(score["f2"], 4),
              "keep_intact": round(score["keep_intact"], 4), "negatives_intact": round(score["negatives_intact"], 4),
              "mask_ms_p50": round(quantile(times, 0.5), 3), "mask_ms_p95": round(quantile(times, 0.95), 3),
              "mask_ms_max": round(max(times), 3), "mask_ms_p95_of_medians": round(quantile(medians, 0.95), 3)}
    print(f"recall {result['recall']:.3f}  precision {result['precision']:.3f}  F2 {result['f2']:.3f}  "
          f"keep intact {result['keep_intact']:.3f}  negatives intact {result['negatives_intact']:.3f}  "
          f"mask p50 {result['mask_ms_p50']:.2f} ms  p95 {result['mask_ms_p95']:.2f} ms  "
          f"(p95 of per-message medians {result['mask_ms_p95_of_medians']:.2f} ms)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
