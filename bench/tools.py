"""Tool-loop benchmark: what the loop itself costs per step, and how many model round trips
each resolved action takes, on scripted scenarios.

In this process: the scripted OpenAI-compatible server, the fake Jira and the fake Shopify
(built from the tau2 retail orders) each serve real HTTP from a uvicorn thread; the engine
runs with the real `openai` client, the real Jira and Shopify tools, the sample knowledge
index and the real embedder. The model and every tool are timed from the outside, so

    loop overhead per step = (time in ToolLoop.run/resume - time in model calls - time in tools) / model calls

is the engine's own work per step: building and checking calls, validating arguments,
JSON, consent bookkeeping, events. The turn's retrieval (embedding the question) is
reported apart, as it isn't per step. Scenarios (each `--runs` times):

- order: "where is my order #W…, email …" → order_status → answer;
- ticket: "open a ticket" → create_ticket proposed → Yes → created → answer;
- status: "any news on SUP-1?" → ticket_status → answer;
- fix: order_status called with a wrong argument name → error back → corrected call → answer.

Last line: one JSON object.

    python bench/tools.py [--runs 50]
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import inspect
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.acting import ToolLoop  # noqa: E402
from bot.answering import GenerativeAnswerer  # noqa: E402
from bot.engine import Engine  # noqa: E402
from bot.memory import InMemoryMemory  # noqa: E402
from bot.model import OpenAIChatModel  # noqa: E402
from bot.profiles import load_profiles  # noqa: E402
from bot.runtime import SAMPLE_DIR, SAMPLE_SOURCES  # noqa: E402
from bot.store import EventLog, connect  # noqa: E402
from bot.tools import Toolbox  # noqa: E402
from bot.tools.jira import JiraTools  # noqa: E402
from bot.tools.shopify import ShopifyTools  # noqa: E402
from bot.types import Message, User  # noqa: E402
from knowledge.connectors.folder import FolderConnector  # noqa: E402
from knowledge.embeddings import E5Embedder  # noqa: E402
from knowledge.index import Index  # noqa: E402
from knowledge.ingest import Ingestor  # noqa: E402
from knowledge.retrieval import Retriever  # noqa: E402
from tests.fakes.jira_api import FakeJira  # noqa: E402
from tests.fakes.openai_server import Call, ScriptedOpenAI, Step  # noqa: E402
from tests.fakes.server import serve  # noqa: E402
from tests.fakes.shopify_api import FakeShopify  # noqa: E402

PROFILES = """
[profiles.desk]
default = true
name = "Desk"
sources = ["helpcenter", "faq", "catalog"]
tools = ["order_status", "create_ticket", "ticket_status"]
"""
ORDER, EMAIL = "#W2611340", "james.li4495@example.com"


class Clock:
    """Seconds spent in the model and in tools during the current measurement."""

    def __init__(self) -> None:
        self.model = self.tools = 0.0


class TimedModel(OpenAIChatModel):
    def __init__(self, clock: Clock, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.clock = clock

    async def step(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return await super().step(*args, **kwargs)
        finally:
            self.clock.model += time.perf_counter() - started


class TimedLoop(ToolLoop):
    """Records the loop's wall time and step count per run or resume."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.samples: list[tuple[float, int]] = []  # (loop seconds minus model and tools, model calls)

    async def _timed(self, work, clock: Clock):
        clock.model = clock.tools = 0.0
        started = time.perf_counter()
        outcome = await work
        own = time.perf_counter() - started - clock.model - clock.tools
        self.samples.append((own, outcome.steps))
        return outcome

    async def run(self, messages, tools, context, on_text=None):
        return await self._timed(super().run(messages, tools, context, on_text), self.model.clock)

    async def resume(self, pending, tools, context):
        return await self._timed(super().resume(pending, tools, context), self.model.clock)


def timed_tools(toolbox: Toolbox, clock: Clock) -> Toolbox:
    """The same tools, each call's duration added to `clock.tools`."""
    for name, tool in list(toolbox.tools.items()):
        fn = tool.function
        if inspect.iscoroutinefunction(fn):
            async def wrapped(*a, _fn=fn, **k):
                started = time.perf_counter()
                try:
                    return await _fn(*a, **k)
                finally:
                    clock.tools += time.perf_counter() - started
        else:
            def wrapped(*a, _fn=fn, **k):
                started = time.perf_counter()
                try:
                    return _fn(*a, **k)
                finally:
                    clock.tools += time.perf_counter() - started
        toolbox.tools[name] = dataclasses.replace(tool, function=functools.wraps(fn)(wrapped))
    return toolbox


def message(conversation: str, text: str = "") -> Message:
    return Message(conversation=conversation, text=text, user=User(id="u1", name="Ada", email="ada@example.com"),
                   channel="web", profile="desk")


async def scenario(name: str, n: int, engine: Engine, llm: ScriptedOpenAI) -> tuple[int, bool]:
    """Run one scenario; returns (model round trips, resolved)."""
    conversation = f"web:{name}{n}"
    before = len(llm.requests)
    if name == "order":
        llm.steps += [Step(calls=[Call("order_status", {"order_number": ORDER, "email": EMAIL})]),
                      Step(text="Your order shipped: tracking 357962501027.")]
        reply = await engine.handle(message(conversation, f"Where is my order {ORDER}? I'm {EMAIL}"))
        resolved = "357962501027" in reply.answer
    elif name == "ticket":
        llm.steps += [Step(calls=[Call("create_ticket", {"summary": f"Printer {n} jams"})]),
                      Step(text="Created it for you.")]
        asked = await engine.handle(message(conversation, "The printer jams, please open a ticket"))
        reply = await engine.confirm(message(conversation), asked.actions[0].value, True)
        resolved = reply.answered and "Created" in reply.answer
    elif name == "status":
        llm.steps += [Step(calls=[Call("ticket_status", {"ticket": "SUP-1"})]), Step(text="SUP-1 is open.")]
        reply = await engine.handle(message(conversation, "Any news on SUP-1?"))
        resolved = "SUP-1 is open" in reply.answer
    else:
        llm.steps += [Step(calls=[Call("order_status", {"order": ORDER})]),
                      Step(calls=[Call("order_status", {"order_number": ORDER, "email": EMAIL})]),
                      Step(text="Your order shipped: tracking 357962501027.")]
        reply = await engine.handle(message(conversation, f"Where is my order {ORDER}? I'm {EMAIL}"))
        resolved = "357962501027" in reply.answer
    return len(llm.requests) - before, resolved


async def measure(runs: int, engine: Engine, loop: TimedLoop, llm: ScriptedOpenAI) -> dict:
    results = {}
    for name in ("order", "ticket", "status", "fix"):
        await scenario(name, -1, engine, llm)  # warm: connections, the embedder
        loop.samples.clear()
        trips, resolved, turns = [], 0, []
        for n in range(runs):
            started = time.perf_counter()
            count, ok = await scenario(name, n, engine, llm)
            turns.append(time.perf_counter() - started)
            trips.append(count)
            resolved += ok
        per_step = [own / steps for own, steps in loop.samples if steps]
        results[name] = {
            "resolved": f"{resolved}/{runs}", "round_trips_per_action": round(sum(trips) / max(resolved, 1), 2),
            "loop_overhead_per_step_ms": {"p50": round(float(np.percentile(per_step, 50)) * 1000, 2),
                                          "p95": round(float(np.percentile(per_step, 95)) * 1000, 2)},
            "turn_ms_p50": round(float(np.percentile(turns, 50)) * 1000, 1),
        }
        print(f"{name:7s} resolved {results[name]['resolved']}, {results[name]['round_trips_per_action']} model "
              f"round trips per action, loop overhead per step p50 {results[name]['loop_overhead_per_step_ms']['p50']} "
              f"ms / p95 {results[name]['loop_overhead_per_step_ms']['p95']} ms (whole turn p50 "
              f"{results[name]['turn_ms_p50']} ms incl. retrieval, model and tool)", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    llm, jira = ScriptedOpenAI(), FakeJira()
    shop = FakeShopify.from_tau2()
    embedder = E5Embedder()
    with tempfile.TemporaryDirectory() as home, serve(llm.app()) as llm_url, serve(jira.app()) as jira_url, \
            serve(shop.app()) as shop_url:
        index = Index(Path(home) / "index.sqlite3")
        for name, relative in SAMPLE_SOURCES:
            Ingestor(index, embedder).ingest(FolderConnector(SAMPLE_DIR / relative, name))
        jira_tools = JiraTools(url=jira_url, project="SUP", email=jira.email, token=jira.token)
        jira_tools.create_ticket(_context(), "First ticket")  # SUP-1 exists for the status scenario
        clock = Clock()
        toolbox = timed_tools(Toolbox().register(jira_tools, ShopifyTools(store_url=shop_url, token=shop.token)),
                              clock)
        model = TimedModel(clock, "bench-model", base_url=f"{llm_url}/v1", api_key="sk-bench", max_retries=0)
        loop = TimedLoop(model)
        profiles_path = Path(home) / "profiles.toml"
        profiles_path.write_text(PROFILES)
        events = EventLog(connect(f"sqlite:///{home}/events.db"))
        engine = Engine(memory=InMemoryMemory(), retriever=Retriever(index, embedder),
                        answerer=GenerativeAnswerer(model), profiles=load_profiles(profiles_path), events=events,
                        toolbox=toolbox, acting=loop)
        results = asyncio.run(measure(args.runs, engine, loop, llm))
        engine.close()
        events.close()
        index.close()
        jira.release()
    print(json.dumps({"runs": args.runs, "scenarios": results}))


def _context():
    from bot.tools import ToolContext
    return ToolContext(conversation="bench", channel="web", user=User(id="u0", name="Bench"), profile="desk")


if __name__ == "__main__":
    main()
