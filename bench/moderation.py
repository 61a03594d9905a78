"""Content moderation (bot/moderation.py): what the local rules catch, and what they wrongly stop.

- detection: tests/fixtures/moderation/cases.tsv, 157 short messages written for this project
  (no labelled toxic / self-harm / threat set ships offline: the PyPI packages that name one
  download it at run time), EN/FR/ZH with a few DE/ES, in three categories plus frustrated
  complaints that must pass. The rules were tuned on the `dev` half only; `holdout` is the
  honest figure. Detection counts a case caught in its own category; flagged-at-all is shown too.
- detection on a public labelled set: tests/fixtures/moderation/openai_moderation_sample.jsonl.gz,
  622 samples of OpenAI's moderation evaluation set (MIT; its PROVENANCE.md says which), long
  English web and forum texts labelled self-harm, violence, hate/threatening, harassment, hate
  or nothing. Per label: flagged at all, and flagged in our category for it (SH: self_harm;
  V, V2, H2: violence; HR, H: harassment); the all-negative samples give a false-positive rate.
- false positives on ordinary support questions: tests/data/sample_questions.jsonl, the user
  turns of tests/data/conversations.jsonl, and ../shared/eval clinc_oos, stackfaq and cnil_fr
  queries. Goal: at most 1%.
- false positives on answer-like text (what output moderation reads): the sample help center's
  documents and the stackfaq answers, paragraph by paragraph.

The endpoint moderator (OpenAIModerator) needs a service, so it isn't measured here.
The last line is one JSON object with every figure.

    python bench/moderation.py [--eval-dir ../shared/eval]
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.moderation import LocalModerator  # noqa: E402

CASES = ROOT / "tests" / "fixtures" / "moderation" / "cases.tsv"
PUBLIC = ROOT / "tests" / "fixtures" / "moderation" / "openai_moderation_sample.jsonl.gz"
LABELS = {"SH": "self_harm", "V": "violence", "V2": "violence", "H2": "violence", "HR": "harassment",
          "H": "harassment"}  # OpenAI's labels -> the local category that should catch them
SAMPLE = ROOT / "knowledge" / "sample"


def cases() -> list[dict]:
    rows = []
    for line in CASES.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            category, language, split, text = line.split("\t")
            rows.append({"category": None if category == "-" else category, "language": language,
                         "split": split, "text": text})
    return rows


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if path.exists() else []


def support_questions(eval_dir: Path) -> dict[str, list[str]]:
    data = ROOT / "tests" / "data"
    return {
        "sample_questions": [r["query"] for r in jsonl(data / "sample_questions.jsonl")],
        "conversations": [t.get("user") or t["user_repeat"] for r in jsonl(data / "conversations.jsonl")
                          for t in r["turns"]],
        "clinc_oos": [r["query"] for r in jsonl(eval_dir / "clinc_oos" / "queries.jsonl")],
        "stackfaq": [r["query"] for r in jsonl(eval_dir / "stackfaq" / "queries.jsonl")],
        "cnil_fr": [r["query"] for r in jsonl(eval_dir / "cnil_fr" / "queries.jsonl")],
    }


def answer_texts(eval_dir: Path) -> dict[str, list[str]]:
    def paragraphs(text: str) -> list[str]:
        return [p.strip() for p in text.split("\n\n") if len(p.strip()) > 20]
    sample = [p for f in sorted(SAMPLE.rglob("*")) if f.suffix in (".md", ".txt", ".html")
              for p in paragraphs(f.read_text(encoding="utf-8", errors="replace"))]
    stackfaq = [p for r in jsonl(eval_dir / "stackfaq" / "corpus.jsonl") for p in paragraphs(r["text"])]
    return {"sample_knowledge": sample, "stackfaq_answers": stackfaq}


def detection(moderator: LocalModerator, rows: list[dict]) -> dict:
    found: dict[str, dict] = {}
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        verdict = moderator.verdict(row["text"])
        row["got"] = verdict.category
        if row["category"]:
            groups[f"{row['split']}"].append(row)
            groups[f"{row['split']}:{row['category']}"].append(row)
            groups[f"{row['split']}:{row['language']}"].append(row)
            groups["all"].append(row)
    for name, members in sorted(groups.items()):
        found[name] = {"n": len(members), "detected": sum(r["got"] == r["category"] for r in members) / len(members),
                       "flagged": sum(r["got"] is not None for r in members) / len(members)}
    for split in ("dev", "holdout", "all"):
        benign = [r for r in rows if r["category"] is None and (split == "all" or r["split"] == split)]
        found[f"{split}:complaints_flagged"] = {"n": len(benign), "rate": sum(r["got"] is not None for r in benign)
                                                / max(1, len(benign))}
    return found


def public_set(moderator: LocalModerator) -> dict:
    """Per label of the public sample: how many, flagged at all, flagged in our category; and
    the negatives' false-positive rate."""
    with gzip.open(PUBLIC, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    found: dict = {}
    negatives = [r for r in rows if not any(r.get(k) == 1 for k in LABELS)]
    for label, category in LABELS.items():
        members = [r for r in rows if r.get(label) == 1]
        verdicts = [moderator.verdict(r["prompt"]) for r in members]
        found[label] = {"n": len(members), "flagged": sum(v.flagged for v in verdicts) / max(1, len(members)),
                        "in_category": sum(v.category == category for v in verdicts) / max(1, len(members))}
    positives = [r for r in rows if any(r.get(k) == 1 for k in LABELS)]
    found["any_label"] = {"n": len(positives), "flagged": sum(moderator.verdict(r["prompt"]).flagged
                                                              for r in positives) / max(1, len(positives))}
    flagged = sum(moderator.verdict(r["prompt"]).flagged for r in negatives)
    found["negatives"] = {"n": len(negatives), "flagged": flagged, "rate": flagged / max(1, len(negatives))}
    return found


def false_positives(moderator: LocalModerator, sets: dict[str, list[str]]) -> tuple[dict, list[tuple[str, str, str]]]:
    figures, flagged = {}, []
    total = hits = 0
    for name, texts in sets.items():
        n = 0
        for text in texts:
            verdict = moderator.verdict(text)
            if verdict.flagged:
                n += 1
                flagged.append((name, verdict.category or "", text))
        figures[name] = {"n": len(texts), "flagged": n, "rate": n / max(1, len(texts))}
        total, hits = total + len(texts), hits + n
    figures["all"] = {"n": total, "flagged": hits, "rate": hits / max(1, total)}
    return figures, flagged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval-dir", default=str(ROOT.parent / "shared" / "eval"))
    args = parser.parse_args()
    eval_dir = Path(args.eval_dir)
    moderator = LocalModerator()
    rows = cases()
    started = time.perf_counter()
    figures: dict = {"detection": detection(moderator, rows), "public": public_set(moderator)}
    figures["support_fp"], wrong_questions = false_positives(moderator, support_questions(eval_dir))
    figures["answer_fp"], wrong_answers = false_positives(moderator, answer_texts(eval_dir))
    checked = len(rows) + figures["support_fp"]["all"]["n"] + figures["answer_fp"]["all"]["n"]
    figures["ms_per_check"] = round((time.perf_counter() - started) * 1000 / max(1, checked), 3)
    figures["missed"] = [r["text"] for r in rows if r["category"] and r["got"] != r["category"]]
    figures["complaints_flagged"] = [r["text"] for r in rows if r["category"] is None and r["got"]]
    figures["support_flagged"] = [text for _, _, text in wrong_questions]
    report(figures, wrong_questions + wrong_answers)
    print(json.dumps(figures, ensure_ascii=False))


def report(figures: dict, wrong: list[tuple[str, str, str]]) -> None:
    d = figures["detection"]
    for split in ("dev", "holdout", "all"):
        line = f"{split:<8} detected {d[split]['detected']:.1%} of {d[split]['n']} (flagged at all " \
               f"{d[split]['flagged']:.1%}); complaints flagged {d[split + ':complaints_flagged']['rate']:.1%} " \
               f"of {d[split + ':complaints_flagged']['n']}"
        print(line)
    for name, f in d.items():
        if name.count(":") == 1 and not name.endswith("complaints_flagged"):
            print(f"  {name:<22} {f['detected']:>6.1%} of {f['n']}")
    p = figures["public"]
    print(f"public set (OpenAI moderation eval, {p['any_label']['n']} labelled + {p['negatives']['n']} negatives): "
          f"flagged {p['any_label']['flagged']:.1%} of labelled; false positives {p['negatives']['flagged']}/"
          f"{p['negatives']['n']} ({p['negatives']['rate']:.1%})")
    for label in LABELS:
        print(f"  {label:<3} -> {LABELS[label]:<10} {p[label]['in_category']:>6.1%} in category, "
              f"{p[label]['flagged']:>6.1%} flagged at all, of {p[label]['n']}")
    for kind in ("support_fp", "answer_fp"):
        print(f"{kind}: " + ", ".join(f"{k} {v['flagged']}/{v['n']} ({v['rate']:.2%})"
                                      for k, v in figures[kind].items()))
    for name, category, text in wrong[:40]:
        print(f"  flagged {category} in {name}: {text[:160]!r}")
    for text in figures["missed"]:
        print(f"  missed: {text!r}")
    print(f"{figures['ms_per_check']} ms per check")


if __name__ == "__main__":
    main()
