"""Model routing (bot/routing.py): share of turns sent to the cheap model, and the latency
and cost of 100 turns against sending every turn to the strong model.

Two scripted OpenAI-compatible endpoints on 127.0.0.1 stand for the models: "cheap"
answers after `--cheap-latency` seconds, "strong" after `--strong-latency`; both quote the
first sentence of passage [1] (bench/cache.py's fake) and report `usage` as the fake server
counts it (tests/fakes/openai_server.py). Prices are list prices per million tokens
(defaults: gpt-4o-mini 0.15 / 0.60, gpt-4o 2.50 / 10.00 US dollars, in / out).

The traffic, from a development question set (../shared/eval/<set>/queries.jsonl), no
answer cache: 60% single questions in a fresh conversation, 20% two questions in one
message ("…? Then, …?", multi-step), 20% questions in one long conversation (its history
grows past the profile's `long_history`). Run twice on the same questions: routed, then
always-strong (the profile's cheap model set to the strong one). Printed: routes by
reason, share routed cheap, model calls, tokens, cost and model time per 100 turns, and
mean / p50 turn time (retrieval included, so noisy on a loaded machine), for both runs.

    python bench/routing.py [--set stackfaq] [--turns 200] [--index PATH]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cache import page, quoting  # noqa: E402
from bot.accounting import Ledger  # noqa: E402
from bot.answering import GenerativeAnswerer  # noqa: E402
from bot.engine import Engine  # noqa: E402
from bot.memory import InMemoryMemory  # noqa: E402
from bot.model import OpenAIChatModel  # noqa: E402
from bot.profiles import load_profiles  # noqa: E402
from bot.routing import RoutedModel  # noqa: E402
from bot.store import EventLog, connect  # noqa: E402
from bot.types import Message, User  # noqa: E402
from knowledge.embeddings import E5Embedder  # noqa: E402
from knowledge.index import Index  # noqa: E402
from knowledge.retrieval import Retriever  # noqa: E402
from knowledge.sync import Syncer  # noqa: E402
from tests.fakes.openai_server import ScriptedOpenAI  # noqa: E402
from tests.fakes.server import serve  # noqa: E402

PROFILES = """
[prices]
"cheap-model" = {{ input = {cheap_in}, output = {cheap_out} }}
"strong-model" = {{ input = {strong_in}, output = {strong_out} }}

[profiles.support]
persona = "You are the support assistant."
min_confidence = 0.5
turn_deadline = 300
[profiles.support.models]
cheap = {{ model = "{cheap}", base_url = "{cheap_url}" }}
strong = {{ model = "strong-model", base_url = "{strong_url}" }}
"""


class Timed:
    """A model whose calls are timed: the model's share of a turn, apart from retrieval (which
    the machine's load makes noisy)."""

    def __init__(self, model: OpenAIChatModel, seconds: list[float]):
        self.model, self.seconds, self.name = model, seconds, model.name

    async def step(self, messages, tools, *, on_text=None, max_tokens=700):
        started = time.perf_counter()
        try:
            return await self.model.step(messages, tools, on_text=on_text, max_tokens=max_tokens)
        finally:
            self.seconds.append(time.perf_counter() - started)

    async def close(self) -> None:
        await self.model.close()


def traffic(queries: list[dict], turns: int, rng: random.Random) -> list[tuple[str, str]]:
    """(conversation, text) in order: single questions, two-part questions, a long conversation."""
    out = []
    for n in range(turns):
        kind = rng.random()
        if kind < 0.6:
            out.append((f"web:single{n}", rng.choice(queries)["query"]))
        elif kind < 0.8:
            first, second = rng.sample(queries, 2)
            out.append((f"web:multi{n}", f"{first['query'].rstrip('?.')}? Then, {second['query']}"))
        else:
            out.append(("web:long", rng.choice(queries)["query"]))
    return out


async def run(args, index: Index, embedder, asked: list[tuple[str, str]], cheap_url: str, strong_url: str,
              work: Path, routed: bool) -> dict:
    path = work / f"profiles-{routed}.toml"
    path.write_text(PROFILES.format(cheap="cheap-model" if routed else "strong-model",
                                    cheap_url=cheap_url if routed else strong_url, strong_url=strong_url,
                                    cheap_in=args.cheap_price[0], cheap_out=args.cheap_price[1],
                                    strong_in=args.strong_price[0], strong_out=args.strong_price[1]))
    profiles = load_profiles(path)
    plan = profiles.get().models
    ledger = Ledger()
    model_seconds: list[float] = []
    models = {e: Timed(OpenAIChatModel(e.model, e.base_url, "sk-bench", 30, max_retries=0, ledger=ledger),
                       model_seconds) for e in {plan.cheap, plan.strong}}
    model = RoutedModel(next(iter(models.values())), models, ledger)
    events = EventLog(connect(f"sqlite:///{work / f'events-{routed}.db'}"))
    engine = Engine(memory=InMemoryMemory(), retriever=Retriever(index, embedder), answerer=GenerativeAnswerer(model),
                    profiles=profiles, events=events)
    seconds, answered = [], 0
    for conversation, text in asked:
        started = time.perf_counter()
        reply = await engine.handle(Message(conversation=conversation, text=text, user=User(id="u"), channel="web"))
        seconds.append(time.perf_counter() - started)
        answered += reply.answered
    engine.close()
    await model.close()
    events.close()
    totals = ledger.snapshot()
    scale = 100 / len(asked)
    routes = Counter({f"{tier}/{reason}": n for (_, tier, reason), n in totals["routes"].items()})
    calls = {model: n for (_, _, model), n in totals["calls"].items()}
    return {"turns": len(asked), "answered": answered, "routes": dict(routes),
            "cheap_share": round(calls.get("cheap-model", 0) / max(1, sum(calls.values())), 3),
            "calls_per_100": {model: round(n * scale, 1) for (_, _, model), n in totals["calls"].items()},
            "tokens_per_100": round(sum(totals["tokens"].values()) * scale),
            "cost_per_100": round(sum(totals["cost"].values()) * scale, 5),
            "model_seconds_per_100": round(sum(model_seconds) * scale, 1),
            "mean_seconds": round(statistics.mean(seconds), 3), "p50_seconds": round(statistics.median(seconds), 3)}


async def bench(args) -> dict:
    folder = Path(args.eval_dir) / args.set
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line) for line in (folder / "queries.jsonl").read_text().splitlines()]
    embedder = E5Embedder()
    with tempfile.TemporaryDirectory(prefix="bench-routing-") as tmp:
        work = Path(tmp)
        if args.index:
            index = Index(args.index)
        else:
            (work / "pages").mkdir()
            for doc in corpus:
                (work / "pages" / f"{doc['id']}.md").write_text(page(doc["title"], doc["text"]))
            index = Index(work / "index.sqlite3")
            index.add_source(args.set, "folder", {"path": str(work / "pages")})
            Syncer(index, embedder, {}).sync(args.set)
        Retriever(index, embedder).search("warm up", k=1)  # the models load before the first timed turn
        asked = traffic(queries, args.turns, random.Random(args.seed))
        cheap = ScriptedOpenAI(latency=args.cheap_latency, responder=quoting)
        strong = ScriptedOpenAI(latency=args.strong_latency, responder=quoting)
        with serve(cheap.app()) as cheap_url, serve(strong.app()) as strong_url:
            results = {"routed": await run(args, index, embedder, asked, f"{cheap_url}/v1", f"{strong_url}/v1",
                                           work, True),
                       "always_strong": await run(args, index, embedder, asked, f"{cheap_url}/v1",
                                                  f"{strong_url}/v1", work, False)}
        index.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval-dir", default=str(ROOT.parent / "shared" / "eval"))
    parser.add_argument("--set", default="stackfaq")
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--index", default="", help="an index of the set already built (e.g. bench/cache.py --work)")
    parser.add_argument("--cheap-latency", type=float, default=0.3)
    parser.add_argument("--strong-latency", type=float, default=0.9)
    parser.add_argument("--cheap-price", type=float, nargs=2, default=(0.15, 0.60))
    parser.add_argument("--strong-price", type=float, nargs=2, default=(2.50, 10.00))
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    results = asyncio.run(bench(args))
    for name, r in results.items():
        print(f"{name:13s} cheap {r['cheap_share']:.1%}  answered {r['answered']}/{r['turns']}  "
              f"per 100 turns: cost ${r['cost_per_100']:.4f}, {r['tokens_per_100']} tokens, "
              f"calls {r['calls_per_100']}; model time {r['model_seconds_per_100']:.1f} s; "
              f"turn mean {r['mean_seconds'] * 1000:.0f} ms, "
              f"p50 {r['p50_seconds'] * 1000:.0f} ms")
        print(f"{'':13s} routes {r['routes']}")
    routed, strong = results["routed"], results["always_strong"]
    print(f"routing saves {1 - routed['cost_per_100'] / max(strong['cost_per_100'], 1e-12):.1%} of the cost and "
          f"{strong['model_seconds_per_100'] - routed['model_seconds_per_100']:.1f} s of model time per 100 turns "
          f"(whole turns: {(strong['mean_seconds'] - routed['mean_seconds']) * 1000:.0f} ms each on average)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
