"""Scale-out benchmark (issue 17): web chat answers/s and latency with one web process and one
sync worker, then two of each, every process a "host" of its own (its own SWITCHBOARD_HOME)
sharing only PostgreSQL (+pgvector: the knowledge index in schema `knowledge`, the events in
`public`) and Redis (memory, delivery queue, sync locks).

A pgvector PostgreSQL and a Redis of the benchmark's own are started (tests/pgvector_service.py,
tests/services.py); `switchboard migrate` creates the index's tables and `switchboard worker
--once` with the sample knowledge fills it (timed: ingestion into PostgreSQL, embedding
included). Then, for each layout, the `serve` processes (extractive answers, no LLM) and the
`worker` processes start; the workers only keep the (already synced) sources on schedule,
as in production between syncs. A load generator in this process posts the sample questions
to `POST /api/chat` ({"conversation": <uuid hex>, "text": …}, SSE), each in a new
conversation, from `--clients` concurrent clients, alternating between the web processes as a
round-robin load balancer would; a few questions per web process warm it first (not timed).
Figures: answers/s over the run's wall time, the time to the `reply` event, p50/p95, and
the CPU PostgreSQL spent per question (every process of the server, from /proc: what one
database core can serve at this index size).
The layouts alternate for `--rounds` rounds (one, two, one, two…), so a change in the
machine's load hits both; answers/s is the median of the rounds, latencies pool them.

Everything, the load generator included, shares this machine's cores: on 2 cores two web
processes compete with each other and the generator, so the ratio says what a second
process adds here, not on two hosts. Last line: one JSON object.

    python bench/scale_out.py [--questions 120] [--clients 8] [--rounds 2]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.running import server  # noqa: E402
from bench.serve import DROPPED_ENV, QUESTIONS, REQUEST_TIMEOUT, Answer, ask, percentile, read_queries, \
    spread  # noqa: E402
from tests.fakes.server import free_port  # noqa: E402
from tests.pgvector_service import pgvector_server  # noqa: E402
from tests.services import redis_server  # noqa: E402

CLI = [sys.executable, "-m", "adapters.cli"]
WARM = 3  # untimed questions per web process: the first search loads the vocabulary and languages


def environment(home: Path, pg: str, redis: str, sample: bool = False) -> dict[str, str]:
    """One host's variables: its own data folder, the shared services."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV and k not in ("INDEX_URL", "INDEX_SCHEMA")}
    return {**env, "PYTHONPATH": str(ROOT), "SWITCHBOARD_HOME": str(home), "INDEX_URL": pg, "DATABASE_URL": pg,
            "REDIS_URL": redis, "SWITCHBOARD_SAMPLE": "1" if sample else "0",
            "SWITCHBOARD_PII_KEY": "scale-out-benchmark-shared-key-0123456789"}


def seed(tmp: Path, pg: str, redis: str) -> dict:
    """Migrate and fill the shared index with the sample knowledge; seconds and chunks."""
    env = environment(tmp / "seed", pg, redis, sample=True)
    subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True)
    began = time.perf_counter()
    subprocess.run([*CLI, "worker", "--once"], env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - began
    import psycopg

    with psycopg.connect(pg) as conn:
        chunks = conn.execute("SELECT COUNT(*) FROM knowledge.chunks").fetchone()[0]
    return {"seconds": round(seconds, 1), "chunks": chunks}


@contextlib.contextmanager
def layout(tmp: Path, pg: str, redis: str, webs: int, workers: int) -> Iterator[list[str]]:
    """`webs` serve and `workers` worker processes, each with its own home; yields the web URLs."""
    with contextlib.ExitStack() as stack:
        bases = []
        for n in range(webs):
            port = free_port()
            env = environment(tmp / f"web-{webs}-{n}", pg, redis)
            stack.enter_context(server([*CLI, "serve", "--port", str(port)], env))
            bases.append(f"http://127.0.0.1:{port}")
        for n in range(workers):
            env = environment(tmp / f"worker-{workers}-{n}", pg, redis)
            process = subprocess.Popen([*CLI, "worker"], env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            stack.callback(lambda p=process: (p.terminate(), p.wait(timeout=60)))
        yield bases


def database_cpu(pg: str) -> float:
    """CPU seconds the PostgreSQL server used so far: the postmaster, its live processes
    (backends, checkpointer, …) and those it reaped (Linux /proc)."""
    import psycopg

    with psycopg.connect(pg) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    postmaster = _stat(backend)[1]
    ticks = sum(_stat(postmaster)[11:15])  # utime, stime, and the reaped children's
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = _stat(int(entry.name))
                if fields[1] == postmaster:
                    ticks += fields[11] + fields[12]
    return ticks / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[int]:
    """/proc/<pid>/stat's fields after the command name (index 1: ppid, 11–14: CPU ticks)."""
    rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return [int(f) if f.lstrip("-").isdigit() else 0 for f in rest]


async def load(bases: list[str], texts: list[str], clients: int, pg: str) -> tuple[list[Answer], float, float]:
    """`clients` concurrent clients share the questions, the i-th going to web process i mod n;
    (answers, seconds, PostgreSQL CPU seconds)."""
    pending = list(enumerate(texts))
    answers: list[Answer] = []

    async def client_loop(client: httpx.AsyncClient) -> None:
        while pending:
            n, text = pending.pop(0)
            answers.append(await ask(client, bases[n % len(bases)], text))

    async with httpx.AsyncClient(trust_env=False, timeout=REQUEST_TIMEOUT) as client:
        for base in bases:  # warm each web process, untimed
            for text in texts[:WARM]:
                await ask(client, base, text)
        cpu, began = database_cpu(pg), time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        return answers, time.perf_counter() - began, database_cpu(pg) - cpu


def figures(runs: list[tuple[list[Answer], float, float]]) -> dict:
    """The rounds of one layout: median answers/s, pooled reply latencies and database CPU."""
    answers = [a for batch, _, _ in runs for a in batch]
    replies = [a.reply_ms for a in answers]
    rates = [round(len(batch) / seconds, 2) for batch, seconds, _ in runs]
    database_ms = 1000 * sum(cpu for _, _, cpu in runs) / len(answers)
    return {"questions": len(answers), "answered": sum(a.answered for a in answers),
            "database_cpu_ms_per_question": round(database_ms, 1),
            "errors": sum(a.error for a in answers), "answers_per_s_rounds": rates,
            "answers_per_s": round(statistics.median(rates), 2),
            "reply_ms": {"p50": percentile(replies, 50), "p95": percentile(replies, 95)}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=120)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    texts = spread(read_queries(QUESTIONS), args.questions)
    result: dict = {"questions": args.questions, "clients": args.clients, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="scale-out-") as folder, pgvector_server() as pg, \
            redis_server() as redis:
        tmp = Path(folder)
        result["seed"] = seed(tmp, pg, redis)
        print(f"index filled: {result['seed']['chunks']} chunks in {result['seed']['seconds']} s", flush=True)
        runs: dict[int, list[tuple[list[Answer], float, float]]] = {1: [], 2: []}
        for round_ in range(args.rounds):
            for n in (1, 2):
                with layout(tmp, pg, redis, webs=n, workers=n) as bases:
                    runs[n].append(asyncio.run(load(bases, texts, args.clients, pg)))
                batch, seconds, cpu = runs[n][-1]
                print(f"round {round_ + 1}, {n} web + {n} worker: {len(batch) / seconds:.2f} answers/s, "
                      f"PostgreSQL CPU {1000 * cpu / len(batch):.1f} ms a question", flush=True)
    one, two = result["1web_1worker"], result["2web_2worker"] = figures(runs[1]), figures(runs[2])
    result["speedup"] = round(two["answers_per_s"] / one["answers_per_s"], 2)
    print(f"\n{'layout':<22}{'answers/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'answered':>10}{'db CPU ms/q':>13}")
    for name, row in (("1 web + 1 worker", one), ("2 web + 2 workers", two)):
        print(f"{name:<22}{row['answers_per_s']:>10}{row['reply_ms']['p50']:>9}{row['reply_ms']['p95']:>9}"
              f"{row['answered']:>7}/{row['questions']}{row['database_cpu_ms_per_question']:>13}")
    print(f"two processes vs one: x{result['speedup']} answers/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
