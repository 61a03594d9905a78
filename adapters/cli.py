"""The `switchboard` command: serve, chat, ask, ingest, sources, sync, eval, worker, admin.

This is the composition root: the only module that reads `os.environ`, once, into
`bot.settings.Settings`. Errors an operator can fix (a bad profiles file, a missing
folder, an unreachable database) print one line naming the problem and exit 2.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import socket
import sys
import uuid
from pathlib import Path
from typing import Callable, Mapping, Sequence

from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from adapters import cli_admin, cli_index, cli_sources
from bot.door import Door
from bot.errors import ConfigError, SwitchboardError
from bot.runtime import Runtime
from bot.settings import Settings
from bot.types import Message, Reply, User
from knowledge import sources
from knowledge.evaluation import EvalDataError
from knowledge.connectors.folder import FolderConnector
from knowledge.documents import Document, Failure
from knowledge.ingest import Report
from knowledge.recheck import recheck

console = Console(stderr=False, highlight=False)
err = Console(stderr=True, highlight=False)


# Third-party loggers that complain about the files they read (a PDF library, Python
# warnings) write to the log file in the data folder: the user gets our one line per failed
# file. They reach stderr too only when LOG_LEVEL is set (someone asked for logs).
LIBRARY_LOGGERS = ("pypdf", "py.warnings")
BACKGROUND_NICENESS = 10  # `worker` (syncing), and `answers` on Redis: they yield the CPU to the web process
log = logging.getLogger(__name__)


def _quiet_libraries(env: Mapping[str, str]) -> None:
    logging.captureWarnings(True)
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.propagate = "LOG_LEVEL" in env
        if not library.propagate:
            library.addHandler(logging.NullHandler())  # else logging's last resort prints to stderr


def _log_file(settings: Settings) -> Path:
    """Library loggers kept off stderr write to `<data folder>/switchboard.log`, through the
    root handler's filters (which redact secrets: adapters/logs.py)."""
    path = settings.home / "switchboard.log"
    quiet = [logging.getLogger(n) for n in LIBRARY_LOGGERS if not logging.getLogger(n).propagate]
    if quiet and not any(isinstance(h, logging.FileHandler) for h in quiet[0].handlers):
        settings.home.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8", delay=True)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for root_handler in logging.getLogger().handlers:
            for kept in root_handler.filters:
                handler.addFilter(kept)
        for library in quiet:
            library.addHandler(handler)
    return path


def _settings(announce: bool = False) -> Settings:
    """The settings from the environment; `announce` says which data folder is used."""
    settings = Settings.from_env(os.environ)
    _log_file(settings)
    if announce:
        err.print(f"Data folder: {settings.home}", markup=False, highlight=False, soft_wrap=True)
    return settings


def _progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[item]}", style="dim"), TimeElapsedColumn(),
                    console=err, transient=False)


def _ingest_progress(bar: Progress, source: str, path: str | Path) -> Callable[[Report, Document | Failure], None]:
    """A bar over the files of `path` (a Q&A form or a catalog is one file of many documents)."""
    connector = FolderConnector(path, source)
    task = bar.add_task(source, total=len(connector.files()) if connector.path.exists() else None, item="")
    files: set[str] = set()

    def update(report: Report, item: Document | Failure) -> None:
        name = item.metadata.get("path", item.id) if isinstance(item, Document) else item.document_id
        files.add(str(name))
        bar.update(task, completed=len(files), item=(item.title if isinstance(item, Document) else name)[:40])
    return update


def _open(settings: Settings, show_sample: bool = True, profile: str = "") -> Runtime:
    runtime = Runtime.open(settings)
    if profile and profile not in runtime.profiles.by_key:
        asyncio.run(runtime.close())
        raise ConfigError(f"no profile named {profile!r} in {settings.profiles_path} "
                          f"(there are: {', '.join(runtime.profiles.by_key)})")
    if show_sample and settings.load_sample and not runtime.index.sources():
        err.print("First start: indexing the bundled sample knowledge base…")
        with _progress_bar() as bar:
            runtime.load_sample(lambda name, path: _ingest_progress(bar, name, path))
    if show_sample:
        _recheck(runtime)
    return runtime


def _recheck(runtime: Runtime) -> None:
    """Folder sources cleaned under older sanitizer rules are cleaned again now (knowledge/recheck.py)."""
    def announce(name: str, count: int) -> None:
        err.print(f"Re-checking {count} document(s) of {name} for hidden content and planted instructions "
                  "(the sanitizer's rules changed)…", markup=False, highlight=False, soft_wrap=True)
    recheck(runtime.syncer(), announce)


def _print_reply(reply: Reply, as_json: bool = False) -> None:
    if as_json:
        console.print_json(json.dumps(reply.to_dict(), ensure_ascii=False))
        return
    console.print(Markdown(reply.answer))
    for n, citation in enumerate(reply.citations, 1):
        console.print(f"  [dim][{n}] {citation.title} — {citation.url}[/dim]")
    for action in reply.actions:
        console.print(f"  [cyan]→ {action.label}[/cyan] [dim](type /human)[/dim]")


# -- commands ---------------------------------------------------------------------------
def _channel_settings() -> list[tuple[str, Callable[[Runtime], object]]]:
    """The chat channels configured in the environment, checked now (a half-configured one
    raises before any indexing), as (name, build it on a runtime); none: only the web chat."""
    from adapters.slack import SlackChannel, SlackSettings
    from adapters.teams import TeamsChannel, TeamsSettings
    from adapters.telegram import TelegramChannel, TelegramSettings

    found = [(name, channel, config.from_env(os.environ)) for name, channel, config in (
        ("slack", SlackChannel, SlackSettings), ("telegram", TelegramChannel, TelegramSettings),
        ("teams", TeamsChannel, TeamsSettings))]
    return [(name, lambda runtime, c=channel, v=values: c(runtime, v)) for name, channel, values in found
            if values is not None]


def _bind(host: str, port: int) -> socket.socket:
    """The listening address, taken before anything else: a port in use is one clear line."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        if getattr(exc, "errno", None) == errno.EADDRINUSE:
            raise SwitchboardError(f"{host}:{port} is already in use (another Switchboard?): stop it, "
                                   "or choose another port with --port N or PORT") from None
        raise SwitchboardError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    sock.set_inheritable(True)
    return sock


def _summary(settings: Settings, channels: Sequence[str]) -> str:
    """The settings as aligned `what: value` lines (secrets masked)."""
    rows = [*settings.summary(), ("channels", ", ".join(["web chat", *channels]))]
    width = max(len(k) for k, _ in rows) + 1
    return "\n".join(f"  {k + ':':<{width}} {v}" for k, v in rows)


def _unrouted_warning(runtime: Runtime) -> None:
    if not any(runtime.handoffs.routed(p) for p in runtime.profiles.by_key.values()):
        err.print("[yellow]warning:[/yellow] no profile hands conversations to an agents channel: \"Talk to a "
                  "human\" will say no one is connected and give the profile's contact instead (an operator "
                  "account, `switchboard admin create`, sends them to the /admin inbox)", soft_wrap=True)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from adapters.answers_process import answering
    from adapters.app import create_app

    settings = _settings(announce=True)
    configured = _channel_settings()
    host, port = args.host or settings.host, args.port or settings.port
    sock = _bind(host, port)
    try:
        err.print(_summary(settings, [name for name, _ in configured]), markup=False, highlight=False,
                  soft_wrap=True)
        runtime = _open(settings)
        channels = [build(runtime) for _, build in configured]
        app = create_app(runtime, channels, **answering("none" if args.no_answers else args.answers, channels))
        _unrouted_warning(runtime)  # after the app: with an operator account, the /admin inbox takes handoffs
        url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        banner = f"Switchboard is running: {url}  ({', '.join(['web chat', *(c.name for c in channels)])})"
        config = uvicorn.Config(app, host=host, port=port,
                                log_level="info",
                                access_log=False, log_config=None)  # uvicorn's records go to the root handler
        _server(config, lambda: err.print(banner, markup=False, highlight=False, soft_wrap=True)).run([sock])
    finally:
        sock.close()
    return 0


def _server(config: object, ready: Callable[[], None]) -> object:
    """uvicorn's server on a socket we bound, calling `ready` once it accepts connections."""
    from adapters.closing import ClosingServer  # uvicorn: not loaded for the other commands

    class Server(ClosingServer):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:  # uvicorn says this itself only when it binds the socket
                logging.getLogger("uvicorn.error").info("Uvicorn running on %s (Press CTRL+C to quit)", url)
                ready()
    url = f"http://{config.host}:{config.port}"
    return Server(config)


def _cli_message(conversation: str, text: str, profile: str) -> Message:
    return Message(conversation=conversation, text=text, user=User(id="cli", name="cli"),
                   channel="cli", profile=profile, private=True)


def cmd_ask(args: argparse.Namespace) -> int:
    runtime = _open(_settings(), profile=args.profile)

    async def run() -> Reply:
        try:
            await asyncio.to_thread(runtime.warm)  # load the models outside the turn's deadline
            return await runtime.engine.handle(_cli_message(f"cli:{uuid.uuid4().hex}", args.question, args.profile))
        finally:
            await runtime.close()
    reply = asyncio.run(run())
    _print_reply(reply, args.json)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    runtime = _open(_settings(announce=True), profile=args.profile)
    conversation = f"cli:{args.conversation or uuid.uuid4().hex}"
    profile = runtime.profiles.get(args.profile)
    console.print(f"[bold]{profile.name}[/bold] — {profile.text('greeting', profile.language)}")
    console.print("[dim]/reset forgets the conversation, /human asks for a person, /quit leaves.[/dim]")

    async def run() -> None:
        warming = asyncio.create_task(asyncio.to_thread(runtime.warm))  # while the user types
        try:
            while True:
                try:
                    text = await asyncio.to_thread(input, "you> ")
                except EOFError:
                    return
                if text.strip() in ("/quit", "/exit"):
                    return
                message = _cli_message(conversation, text, args.profile)
                if text.strip() == "/reset":
                    await runtime.engine.forget(conversation)
                    console.print("[dim]Conversation forgotten.[/dim]")
                    continue
                if text.strip() == "/human":
                    _print_reply(await runtime.engine.request_handoff(message))
                    continue
                await warming  # the models load outside the turn's deadline
                _print_reply(await runtime.engine.handle(message))
        finally:
            await runtime.close()
    asyncio.run(run())
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    path = Path(args.path).expanduser()
    if not path.exists():
        raise SwitchboardError(f"no such file or folder: {path}")
    settings = _settings(announce=True)
    runtime = Runtime.open(settings)
    source = args.source or path.resolve().stem
    try:
        _replace(runtime, source, path.resolve(), args.replace)
        log = _log_file(settings)
        logged = log.stat().st_size if log.exists() else 0
        with _progress_bar() as bar:
            report = runtime.ingest(path, source, _ingest_progress(bar, source, path))
        console.print(f"{source}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
                      f"{report.removed} removed; {report.chunks_embedded} chunks embedded, "
                      f"{report.chunks_reused} reused")
        cli_sources.report_cleaning(report)
        for failure in report.failures:
            err.print(f"[yellow]could not read[/yellow] {escape(failure.error)}", soft_wrap=True)
        if log.exists() and log.stat().st_size > logged:
            err.print(f"[dim]the file readers' warnings are in {escape(str(log))}[/dim]", soft_wrap=True)
        _readers(runtime, source)
    finally:
        asyncio.run(runtime.close())
    return 0


def _replace(runtime: Runtime, source: str, path: Path, replace: bool) -> None:
    """Ingesting another folder into an existing source replaces its content: only when asked."""
    existing = runtime.index.source(source)
    if existing is None or sources.same_folder(existing, path):
        return  # a new source, or the same folder again: the usual incremental update
    if not replace:
        raise SwitchboardError(f"source {source!r} already holds {existing.documents} document(s) from "
                               f"{sources.origin(existing)}: add --replace to replace them with {path}, "
                               "or --source NAME to make a new source")
    console.print(f"Replacing source {source}: removing its {existing.documents} document(s) from "
                  f"{sources.origin(existing)}", markup=False, highlight=False, soft_wrap=True)
    runtime.index.remove_source(source)


def _readers(runtime: Runtime, source: str) -> None:
    """Which profiles will answer from `source` (a warning when none will)."""
    readers = [p.key for p in runtime.profiles.by_key.values() if p.reads(source)]
    if readers:
        console.print(f"{source} is read by profile(s): {', '.join(readers)}", markup=False, highlight=False)
        return
    err.print(f"[yellow]warning:[/yellow] no profile reads {escape(source)}, so no answer will use it: add it to "
              f"a profile's sources in {escape(str(runtime.settings.profiles_path))}", soft_wrap=True)


def cmd_eval(args: argparse.Namespace) -> int:
    from bot.evaluation import evaluate_answers
    from knowledge.embeddings import E5Embedder
    from knowledge.evaluation import RetrievalEval, read_jsonl

    if args.kind == "conversations":
        return _eval_conversations(args)
    if not args.queries:
        raise SwitchboardError(f"eval {args.kind} needs --queries Q.jsonl")
    if args.kind == "retrieval":
        if not args.corpus:
            raise SwitchboardError("eval retrieval needs --corpus C.jsonl")
        corpus = read_jsonl(args.corpus, ("id",))
        queries = read_jsonl(args.queries, ("query", "relevant"))
        with _progress_bar() as bar:
            task = bar.add_task("indexing", total=len(corpus), item="")
            evaluation = RetrievalEval(corpus, E5Embedder(),
                                       lambda r, item: bar.update(task, advance=1, item=item.title[:40]),
                                       index_url=args.index_url)
        try:
            scores = evaluation.run(queries, args.mode).to_dict()
        finally:
            evaluation.close()
        console.print(f"mode {args.mode}: recall@1 {scores['recall@1']:.3f}  recall@5 {scores['recall@5']:.3f}  "
                      f"MRR@10 {scores['mrr@10']:.3f}  n {scores['n']}")
        print(json.dumps(scores))
        return 0
    settings = _settings()
    result = asyncio.run(evaluate_answers(settings, read_jsonl(args.queries, ("query",)),
                                          read_jsonl(args.corpus, ("id",)) if args.corpus else None,
                                          profile=args.profile))
    console.print(f"answered {result['answered']:.3f}  declined {result['declined']:.3f}  "
                  f"cited relevant {result['cited_relevant']}  n {result['n']}")
    print(json.dumps(result))
    return 0


def _eval_conversations(args: argparse.Namespace) -> int:
    from bot.evaluation import check_cases, evaluate_conversations
    from knowledge.evaluation import read_jsonl

    if not args.cases:
        raise SwitchboardError("eval conversations needs --cases F.jsonl")
    cases = check_cases(read_jsonl(args.cases, ("id", "class", "turns")), args.cases)
    result = asyncio.run(evaluate_conversations(_settings(), cases, args.split, profile=args.profile))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    _print_conversations(result)
    figures = {k: v for k, v in result.items() if k != "failures"}
    print(json.dumps({**figures, "failures_n": len(result["failures"])}, ensure_ascii=False))
    return 0


def _print_conversations(result: dict, shown: int = 30) -> None:
    """A table of class, turns, rate; then the first failures, one line each (plain text: no markup)."""
    print(f"{'class':<16} {'n':>4} {'rate':>7}  by expected kind")
    for name, row in result["classes"].items():
        kinds = "  ".join(f"{k} {r:.3f}" for k, r in row["by_kind"].items())
        print(f"{name:<16} {row['n']:>4} {row['rate']:>7.3f}  {kinds}")
    print(f"{'overall':<16} {result['turns']:>4} {result['overall'] or 0:>7.3f}  "
          f"({result['cases']} conversations, split {result['split']}; turn p50 {result['turn_ms_p50']} ms, "
          f"p95 {result['turn_ms_p95']} ms)")
    for failure in result["failures"][:shown]:
        print(f"FAIL {failure['case']} turn {failure['turn']}: {failure['problem']} | answered "
              f"{failure['answered']} {failure['citation'] or '-'} {failure['language']} | {failure['answer']}")
    if len(result["failures"]) > shown:
        print(f"… and {len(result['failures']) - shown} more failures")


def cmd_telegram(args: argparse.Namespace) -> int:
    """Long polling: the bot answers Telegram without a public URL (local use)."""
    from adapters.telegram import TelegramChannel, TelegramSettings

    if not args.polling:
        raise SwitchboardError("use `switchboard telegram --polling` (the webhook runs inside `switchboard serve`)")
    settings = TelegramSettings.from_env(os.environ, webhook=False)
    if settings is None:
        raise SwitchboardError("TELEGRAM_BOT_TOKEN is not set (get one from @BotFather)")
    runtime = _open(_settings())
    channel = TelegramChannel(runtime, settings)
    err.print("Switchboard is answering Telegram by long polling (Ctrl-C stops).", markup=False)

    async def run() -> None:
        await asyncio.to_thread(runtime.warm)
        try:
            await channel.poll()
        finally:
            await runtime.close()
    asyncio.run(run())
    return 0


def cmd_teams(args: argparse.Namespace) -> int:
    """Build the Teams app package (only TEAMS_APP_ID is needed)."""
    from adapters.teams_package import build_package

    path = build_package(os.environ.get("TEAMS_APP_ID", "").strip(), args.out, version=args.version)
    console.print(f"Wrote {path}: upload it in Teams (Apps → Manage your apps → Upload an app).")
    return 0


def cmd_answers(args: argparse.Namespace) -> int:
    """Answer workers only: take deliveries from the queue that `serve` processes fill (REDIS_URL
    shared across hosts; the SQLite queue in the data folder on one machine)."""
    settings = _settings(announce=not args.child)
    _lower_priority(answers_niceness(args.nice, settings.redis_url))
    runtime = _open(settings, show_sample=not args.child)  # serve, the parent, indexed the sample
    if args.door_fd is not None:  # serve's door: a burst there goes before a new answer here
        runtime.pipeline.door = Door(args.door_fd)
    channels = [build(runtime) for _, build in _channel_settings()]

    import uvicorn
    from starlette.applications import Starlette

    from adapters.answers_process import watch_parent
    from adapters.app import EVENT_FLUSH_SECONDS, every, observed
    from bot.runtime import settle_heap, unsettle_heap
    _, probes = observed(runtime, channels)  # answer latency, retries, dead letters: this process's own

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        if args.child:  # Ctrl-C reaches the whole process group: `serve` stops us, by closing our stdin
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            watch_parent(stop)  # ... or by dying
        else:
            loop.add_signal_handler(signal.SIGINT, stop.set)
        await asyncio.to_thread(runtime.warm)
        settle_heap()
        started = []
        flushing = asyncio.create_task(every(EVENT_FLUSH_SECONDS, runtime.events.flush))
        server = uvicorn.Server(uvicorn.Config(Starlette(routes=probes), host=args.host, port=args.metrics_port,
                                               log_level="warning", lifespan="off"))
        server.capture_signals = contextlib.nullcontext  # the handlers above stop this process, not uvicorn's
        sockets = [socket.socket(fileno=args.metrics_fd)] if args.metrics_fd is not None else None
        serving = asyncio.create_task(server.serve(sockets)) if args.metrics_port or sockets else None
        try:
            for channel in channels:  # senders only: the web process receives
                await getattr(channel, "start_sending", channel.start)()
                started.append(channel)
            runtime.pipeline.start()
            err.print(f"Switchboard answer workers are running ({runtime.pipeline.workers} tasks, "
                      f"channels: {', '.join(['web chat', *(c.name for c in channels)])}"
                      f"{'; a child process of serve' if args.child else ''}).", markup=False)
            await stop.wait()
        finally:
            await runtime.pipeline.stop()
            flushing.cancel()
            if serving is not None:
                server.should_exit = True
                await serving
            for channel in reversed(started):
                await channel.stop()
            await runtime.close()
            unsettle_heap()
    asyncio.run(run())
    return 0


def answers_niceness(asked: int | None, redis_url: str) -> int:
    """`answers --nice`, or by default: 10 with the Redis queue (the process yields the CPU to
    the web process, as `worker` does), 0 with the SQLite one, where a lowered answers process
    holding the queue's write lock when it is preempted makes the door wait. Measured, split
    layout p99: Redis 24.0 / 14.5 / 15.2 -> 15.1 / 13.9 / 12.6 ms (Slack), 13.4 / 12.1 -> 12.0 /
    11.4 ms (Telegram); SQLite 14.1 / 13.4 / 15.3 -> 17.2 / 13.8 / 17.6 ms (Slack)."""
    if asked is not None:
        return asked
    return BACKGROUND_NICENESS if redis_url else 0


def _lower_priority(niceness: int) -> None:
    """Background work (answering, syncing) yields the CPU to the web process on a shared
    machine: its acknowledgements are timed by the platforms (Slack retries after 3 s).
    Alone on a host it makes no difference. Not allowed (a container's policy): unchanged."""
    if niceness > 0 and hasattr(os, "nice"):
        try:
            os.nice(niceness)
        except OSError as exc:
            log.warning("could not lower this process's CPU priority: %s", exc)


def cmd_worker(args: argparse.Namespace) -> int:
    from bot.worker import run_worker

    _lower_priority(args.nice)
    asyncio.run(run_worker(_settings(), interval=args.interval, once=args.once))
    return 0


EVAL_FORMATS = """\
files are JSON lines (one object per line; blank lines are skipped; see docs/eval.md):

  --corpus C.jsonl    one document per line: id (required), title, text
    {"id": "returns", "title": "Returns", "text": "You have 30 days to return an item."}

  --queries Q.jsonl   one question per line: query (required), relevant (ids of the documents
                      that answer it: required for retrieval, optional for answers)
    {"query": "How long do I have to return an item?", "relevant": ["returns"]}

  retrieval indexes the corpus in a throwaway index and prints recall@1, recall@5, MRR@10;
  answers asks the bot each query (from the corpus if given, else the configured knowledge)
  and prints the shares answered, declined and citing a relevant document. The last line
  printed is the figures as JSON. Against your ingested knowledge (answers without --corpus),
  a document's id is its path in the folder without the suffix, alone or after its source:
  "en/returns" or "helpcenter/en/returns".
"""


def _with_settings(command: Callable[[argparse.Namespace, Settings], int]) -> Callable[[argparse.Namespace], int]:
    return lambda args: command(args, _settings())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="switchboard", description="An AI support bot for Slack, Telegram and Teams.")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the web process (web chat, channel webhooks)")
    serve.add_argument("--port", type=int, default=0, help="port (default: $PORT or 8000)")
    serve.add_argument("--host", default="", help="address to bind (default: $HOST or 127.0.0.1)")
    serve.add_argument("--answers", choices=["process", "inline", "none"], default="process",
                       help="who answers the channels' queued deliveries: a child `answers` process this one "
                            "supervises (default: acknowledgements never wait on answering work), tasks in this "
                            "process (one process, less memory, slower acks under bursts), or none (`switchboard "
                            "answers` processes do)")
    serve.add_argument("--no-answers", action="store_true",
                       help="receive and queue only, as --answers none")
    serve.set_defaults(func=cmd_serve)
    answers = sub.add_parser("answers", help="run answer workers on the delivery queue (for separate web and "
                                             "worker processes)")
    answers.add_argument("--metrics-port", type=int, default=0,
                         help="serve this process's /metrics and /healthz on this port (default: none)")
    answers.add_argument("--host", default="127.0.0.1", help="address of --metrics-port (default: 127.0.0.1)")
    answers.add_argument("--nice", type=int, default=None,
                         help="lower this process's CPU priority by N (default: 10 with REDIS_URL; 0 with the "
                              "SQLite queue, where a lowered answers process holding its write lock makes the web "
                              "process wait)")
    answers.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # started by `serve`
    answers.add_argument("--metrics-fd", type=int, default=None, help=argparse.SUPPRESS)  # its socket, from `serve`
    answers.add_argument("--door-fd", type=int, default=None, help=argparse.SUPPRESS)  # bot/door.py, from `serve`
    answers.set_defaults(func=cmd_answers)
    chat = sub.add_parser("chat", help="chat in the terminal")
    chat.add_argument("--profile", default="")
    chat.add_argument("--conversation", default="", help="resume a conversation id")
    chat.set_defaults(func=cmd_chat)
    ask = sub.add_parser("ask", help="ask one question and print the answer with its sources")
    ask.add_argument("question")
    ask.add_argument("--profile", default="")
    ask.add_argument("--json", action="store_true", help="print the Reply as JSON")
    ask.set_defaults(func=cmd_ask)
    ingest = sub.add_parser("ingest", help="index a folder or file (Markdown, HTML, text, PDF, Q&A form, catalog)")
    ingest.add_argument("path")
    ingest.add_argument("--source", default="", help="source name (default: the folder's name)")
    ingest.add_argument("--replace", action="store_true",
                        help="the source exists with another folder: remove its documents and index PATH instead")
    ingest.set_defaults(func=cmd_ingest)
    cli_sources.add_parsers(sub, _with_settings)
    cli_index.add_parsers(sub, _with_settings)
    cli_admin.add_parsers(sub, _with_settings)
    ev = sub.add_parser("eval", help="measure retrieval or answers on your own data", epilog=EVAL_FORMATS,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("kind", choices=["retrieval", "answers", "conversations"])
    ev.add_argument("--corpus", default="", help="retrieval (needed), answers (optional): documents, JSON lines")
    ev.add_argument("--queries", default="", help="retrieval, answers: questions, JSON lines")
    ev.add_argument("--index-url", default="",
                    help="retrieval: index in a throwaway schema of this PostgreSQL (default: a temporary SQLite file)")
    ev.add_argument("--mode", choices=["lexical", "dense", "hybrid"], default="hybrid",
                    help="retrieval: which search to score (default hybrid, as the bot uses)")
    ev.add_argument("--profile", default="", help="answers: the profile that answers (default: the default one)")
    ev.add_argument("--cases", default="", help="conversations: the cases file (see tests/data/README.md)")
    ev.add_argument("--split", choices=["dev", "holdout", "all"], default="all", help="conversations: which cases")
    ev.add_argument("--json", action="store_true", help="conversations: print only the JSON result")
    ev.set_defaults(func=cmd_eval)
    telegram = sub.add_parser("telegram", help="answer Telegram by long polling (no public URL needed)")
    telegram.add_argument("--polling", action="store_true", help="fetch updates with getUpdates")
    telegram.set_defaults(func=cmd_telegram)
    teams = sub.add_parser("teams", help="Microsoft Teams: build the app package to upload")
    teams.add_argument("action", choices=["package"])
    teams.add_argument("--out", default="switchboard-teams.zip", help="where to write the zip")
    teams.add_argument("--version", default="", help="app version, e.g. 1.0.1 (default: the manifest's)")
    teams.set_defaults(func=cmd_teams)
    worker = sub.add_parser("worker", help="keep knowledge sources in sync on a schedule")
    worker.add_argument("--interval", type=int, default=15 * 60, help="seconds between syncs of a source")
    worker.add_argument("--once", action="store_true", help="sync every source once and exit")
    worker.add_argument("--nice", type=int, default=BACKGROUND_NICENESS,
                        help=f"lower this process's CPU priority by N (default: {BACKGROUND_NICENESS}; 0: unchanged)")
    worker.set_defaults(func=cmd_worker)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from adapters import logs  # one root handler that redacts secrets from every logger's records

    logs.configure(os.environ.get("LOG_LEVEL", "WARNING"), logs.secrets_in(os.environ))
    _quiet_libraries(os.environ)
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (SwitchboardError, EvalDataError, FileNotFoundError) as exc:
        err.print(f"[red]switchboard: error:[/red] {escape(str(exc))}", soft_wrap=True)  # one line, even piped
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
