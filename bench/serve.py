"""Web process benchmark: start-up, answer latency, throughput and memory of `switchboard serve`.

The real web process runs as a subprocess (`python -m adapters.cli serve`) with a fresh
SWITCHBOARD_HOME, the embedded defaults (SQLite memory and events, extractive answerer; any
LLM, Redis or database variable of the caller's environment is dropped) and no network but
127.0.0.1. Its first start indexes the bundled sample knowledge: that start is timed until
`/healthz` answers. Then, over HTTP as a browser would:

- `/healthz` latency, the baseline of a request that does no answering;
- sample questions (tests/data/sample_questions.jsonl, evenly spread over its languages)
  and a few out-of-scope ones (clinc_oos) posted one at a time to `/api/chat`, each in a
  new conversation: time to the first SSE event (first visible output) and to the `reply`
  event (the full answer). The extractive answerer writes its answer in one `delta`, and a
  declined question sends only the `reply`, so the two are close by design;
- the same questions from concurrent clients, for answers per second;
- the server's RSS at idle right after start and its peak (VmHWM, /proc/<pid>/status).

The server is stopped with SIGINT (uvicorn's graceful shutdown) and started once more on
the same home to time a restart with the index already built. The client runs on the same
machine, so under concurrency it takes CPU from the server. The last line is one JSON
object with every figure, for scripts.

    python bench/serve.py [--questions 30] [--oos 5] [--clients 10] [--concurrent 60]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "tests" / "data" / "sample_questions.jsonl"
OUT_OF_SCOPE = ROOT.parent / "shared" / "eval" / "clinc_oos" / "queries.jsonl"
# The caller's configuration that would send the server elsewhere than its embedded defaults.
DROPPED_ENV = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL", "REDIS_URL", "DATABASE_URL",
               "SWITCHBOARD_INDEX", "SWITCHBOARD_PROFILES", "SWITCHBOARD_SAMPLE", "PORT", "HOST")
START_TIMEOUT = 900  # seconds: the first start embeds the sample KB on a possibly busy machine
REQUEST_TIMEOUT = 120
HEALTHZ_SAMPLES = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else 0.0


def read_queries(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line)["query"] for line in f if line.strip()]


def spread(items: list[str], n: int) -> list[str]:
    """`n` items evenly spaced over the list (cycled when n is larger)."""
    return [items[(i * len(items)) // n % len(items)] if n <= len(items) else items[i % len(items)]
            for i in range(n)]


def proc_mb(pid: int, field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of a process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except FileNotFoundError:
        pass
    return 0.0


class Server:
    """`switchboard serve` in a subprocess on a free port, with its own home folder."""

    def __init__(self, home: Path):
        self.home = home
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = home / f"serve-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        """Start and wait until /healthz answers: the seconds it took."""
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        env.update(SWITCHBOARD_HOME=str(self.home), HOST="127.0.0.1", LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
        started = time.perf_counter()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "adapters.cli", "serve", "--port", str(self.port)],
                                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while True:  # readiness poll, bounded by START_TIMEOUT
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.tail()}")
                if time.perf_counter() - started > START_TIMEOUT:
                    self.stop()
                    raise RuntimeError(f"the server did not answer /healthz within {START_TIMEOUT} s")
                try:
                    if client.get(f"{self.base}/healthz").status_code == 200:
                        return time.perf_counter() - started
                except httpx.TransportError:
                    pass
                time.sleep(0.1)

    def stop(self) -> tuple[float, int | None]:
        """SIGINT (graceful), then SIGTERM, then SIGKILL: (seconds to exit, exit code)."""
        started = time.perf_counter()
        if self.process is None or self.process.poll() is not None:
            return 0.0, self.process.returncode if self.process else None
        for send, wait in ((lambda p: p.send_signal(signal.SIGINT), 30), (subprocess.Popen.terminate, 10),
                           (subprocess.Popen.kill, 10)):
            send(self.process)
            try:
                self.process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        return time.perf_counter() - started, self.process.returncode

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


@dataclass
class Answer:
    """One /api/chat exchange as the client saw it."""

    first_event_ms: float
    reply_ms: float
    answered: bool
    deltas: int
    error: bool = False


async def ask(client: httpx.AsyncClient, base: str, text: str) -> Answer:
    """POST one question in a new conversation and read the SSE stream to its end."""
    body = {"conversation": uuid.uuid4().hex, "text": text}
    started = time.perf_counter()
    first = reply = None
    event, deltas, answered, error = "", 0, False, False
    async with client.stream("POST", f"{base}/api/chat", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
                first = first or time.perf_counter()
                deltas += event == "delta"
            elif line.startswith("data:") and event in ("reply", "error"):
                reply = time.perf_counter()
                error = event == "error"
                answered = not error and bool(json.loads(line[5:]).get("answered"))
    if first is None or reply is None:
        raise RuntimeError(f"no reply event for {text!r}")
    return Answer((first - started) * 1000, (reply - started) * 1000, answered, deltas, error)


async def ask_in_turn(base: str, texts: list[str]) -> list[Answer]:
    async with httpx.AsyncClient(trust_env=False, timeout=REQUEST_TIMEOUT) as client:
        return [await ask(client, base, text) for text in texts]


async def ask_concurrently(base: str, texts: list[str], clients: int) -> tuple[list[Answer], float]:
    """`clients` workers share the questions; (answers, wall seconds)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for text in texts:
        queue.put_nowait(text)
    answers: list[Answer] = []

    async def worker() -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=REQUEST_TIMEOUT) as client:
            while not queue.empty():
                answers.append(await ask(client, base, queue.get_nowait()))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return answers, time.perf_counter() - started


def healthz_ms(base: str, n: int) -> list[float]:
    timings = []
    with httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT) as client:
        for _ in range(n):
            started = time.perf_counter()
            client.get(f"{base}/healthz").raise_for_status()
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def summary(answers: list[Answer]) -> dict:
    firsts, replies = [a.first_event_ms for a in answers], [a.reply_ms for a in answers]
    return {"n": len(answers), "answered": sum(a.answered for a in answers), "errors": sum(a.error for a in answers),
            "first_event_ms": {"p50": percentile(firsts, 50), "p95": percentile(firsts, 95)},
            "reply_ms": {"p50": percentile(replies, 50), "p95": percentile(replies, 95)},
            "mean_reply_ms": round(float(np.mean(replies)), 1) if replies else 0.0}


def run(args: argparse.Namespace, home: Path) -> dict:
    questions = spread(read_queries(QUESTIONS), args.questions)
    oos = spread(read_queries(OUT_OF_SCOPE), args.oos) if OUT_OF_SCOPE.exists() and args.oos else []
    server = Server(home)
    figures: dict = {"load_average_start": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
                     "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "")}
    try:
        figures["first_start_s"] = round(server.start(), 2)
        time.sleep(1.0)  # let start-up work settle before reading idle memory
        figures["idle_rss_mb"], figures["idle_hwm_mb"] = proc_mb(server.pid, "VmRSS"), proc_mb(server.pid, "VmHWM")
        health = healthz_ms(server.base, HEALTHZ_SAMPLES)
        figures["healthz_ms"] = {"p50": percentile(health, 50), "p95": percentile(health, 95)}
        first = asyncio.run(ask_in_turn(server.base, questions[:1]))[0]
        figures["first_chat_ms"] = round(first.reply_ms, 1)
        in_scope = asyncio.run(ask_in_turn(server.base, questions))
        out_of_scope = asyncio.run(ask_in_turn(server.base, oos))
        figures["sequential"] = summary(in_scope + out_of_scope)
        figures["sequential_in_scope"] = summary(in_scope)
        figures["sequential_out_of_scope"] = summary(out_of_scope)
        figures["sequential_answers_per_s"] = round(1000 / figures["sequential"]["mean_reply_ms"], 2)
        figures["reply_over_healthz_p50"] = round(figures["sequential"]["reply_ms"]["p50"]
                                                  / (figures["healthz_ms"]["p50"] or 1e-9), 1)
        mixed = spread(questions + oos, args.concurrent)
        answers, wall = asyncio.run(ask_concurrently(server.base, mixed, args.clients))
        figures["concurrent"] = {**summary(answers), "clients": args.clients, "seconds": round(wall, 2),
                                 "answers_per_s": round(len(answers) / wall, 2)}
        figures["after_load_rss_mb"] = proc_mb(server.pid, "VmRSS")
        figures["peak_rss_mb"] = proc_mb(server.pid, "VmHWM")
    finally:
        figures["stop_s"], figures["exit_code"] = (round(v, 2) if isinstance(v, float) else v for v in server.stop())
    restart = Server(home)
    try:
        figures["restart_s"] = round(restart.start(), 2)
        time.sleep(1.0)
        figures["restart_idle_rss_mb"] = proc_mb(restart.pid, "VmRSS")
        figures["restart_first_chat_ms"] = round(asyncio.run(ask_in_turn(restart.base, questions[:1]))[0].reply_ms, 1)
        figures["restart_rss_after_first_chat_mb"] = proc_mb(restart.pid, "VmRSS")
    finally:
        figures["restart_exit_code"] = restart.stop()[1]
    figures["load_average_end"] = round(os.getloadavg()[0], 2)
    return figures


def print_table(f: dict) -> None:
    def row(label: str, value, note: str = "") -> None:
        print(f"  {label:<42}{value!s:>14}  {note}")

    seq, ins, oos, conc = f["sequential"], f["sequential_in_scope"], f["sequential_out_of_scope"], f["concurrent"]
    print("\nswitchboard serve (extractive answerer, SQLite memory, sample KB), client on the same machine")
    row("first start, indexing the sample KB (s)", f["first_start_s"], "until /healthz answers")
    row("restart with the index built (s)", f["restart_s"])
    row("RSS at idle after first start (MB)", f["idle_rss_mb"], f"(peak so far {f['idle_hwm_mb']}, from indexing)")
    row("RSS at idle after restart (MB)", f["restart_idle_rss_mb"], "(the embedding model loads on the first question)")
    row("restart: first chat ms / RSS after it (MB)", f"{f['restart_first_chat_ms']} / "
        f"{f['restart_rss_after_first_chat_mb']}")
    row("/healthz ms p50 / p95", f"{f['healthz_ms']['p50']} / {f['healthz_ms']['p95']}", f"n {HEALTHZ_SAMPLES}")
    row("first chat after first start (ms)", f["first_chat_ms"], "(not counted below)")
    for label, s in (("all", seq), ("in scope", ins), ("out of scope", oos)):
        row(f"1 client, {label}: first event ms p50/p95",
            f"{s['first_event_ms']['p50']} / {s['first_event_ms']['p95']}",
            f"n {s['n']}, answered {s['answered']}, errors {s['errors']}")
        row(f"1 client, {label}: reply ms p50/p95", f"{s['reply_ms']['p50']} / {s['reply_ms']['p95']}")
    row("1 client: answers/s", f["sequential_answers_per_s"])
    row("reply p50 / healthz p50", f"×{f['reply_over_healthz_p50']}")
    row(f"{conc['clients']} clients: answers/s", conc["answers_per_s"], f"{conc['n']} answers in {conc['seconds']} s")
    row(f"{conc['clients']} clients: first event ms p50/p95",
        f"{conc['first_event_ms']['p50']} / {conc['first_event_ms']['p95']}")
    row(f"{conc['clients']} clients: reply ms p50/p95", f"{conc['reply_ms']['p50']} / {conc['reply_ms']['p95']}",
        f"errors {conc['errors']}")
    row("RSS after load (MB)", f["after_load_rss_mb"])
    row("peak RSS, VmHWM (MB)", f["peak_rss_mb"], "includes the first start's indexing")
    row("graceful stop (s) / exit code", f"{f['stop_s']} / {f['exit_code']}")
    row("machine load average start / end", f"{f['load_average_start']} / {f['load_average_end']}",
        f"on {f['cpus']} cores shared with other work")
    row("OMP_NUM_THREADS (the embedder's threads)", f["omp_num_threads"] or "unset")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=30, help="in-scope sample questions asked one at a time")
    parser.add_argument("--oos", type=int, default=5, help="out-of-scope questions (clinc_oos) added")
    parser.add_argument("--clients", type=int, default=10, help="concurrent clients for the throughput figure")
    parser.add_argument("--concurrent", type=int, default=60, help="questions shared by the concurrent clients")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="switchboard-serve-") as home:
        figures = run(args, Path(home))
    print_table(figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
