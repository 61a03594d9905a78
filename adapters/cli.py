"""The `switchboard` command: serve, chat, ask, ingest, sources, sync, eval, worker.

This is the composition root: the only module that reads `os.environ`, once, into
`bot.settings.Settings`. Errors an operator can fix (a bad profiles file, a missing
folder, an unreachable database) print one line naming the problem and exit 2.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Callable, Sequence

from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from adapters import cli_sources
from bot.errors import SwitchboardError
from bot.runtime import Runtime
from bot.settings import Settings
from bot.types import Message, Reply, User
from knowledge.evaluation import EvalDataError
from knowledge.connectors.folder import FolderConnector
from knowledge.documents import Document, Failure
from knowledge.ingest import Report

console = Console(stderr=False, highlight=False)
err = Console(stderr=True, highlight=False)


def _settings() -> Settings:
    return Settings.from_env(os.environ)


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


def _open(settings: Settings, show_sample: bool = True) -> Runtime:
    runtime = Runtime.open(settings)
    if show_sample and settings.load_sample and not runtime.index.sources():
        err.print("First start: indexing the bundled sample knowledge base…")
        with _progress_bar() as bar:
            runtime.load_sample(lambda name, path: _ingest_progress(bar, name, path))
    return runtime


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
def _channels(runtime: Runtime) -> list:
    """The chat channels configured in the environment (none: only the web chat)."""
    from adapters.slack import SlackChannel, SlackSettings
    from adapters.teams import TeamsChannel, TeamsSettings
    from adapters.telegram import TelegramChannel, TelegramSettings

    channels: list = []
    slack = SlackSettings.from_env(os.environ)
    if slack is not None:
        channels.append(SlackChannel(runtime, slack))
    telegram = TelegramSettings.from_env(os.environ)
    if telegram is not None:
        channels.append(TelegramChannel(runtime, telegram))
    teams = TeamsSettings.from_env(os.environ)
    if teams is not None:
        channels.append(TeamsChannel(runtime, teams))
    return channels


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from adapters.app import create_app

    settings = _settings()
    runtime = _open(settings)
    channels = _channels(runtime)
    port = args.port or settings.port
    host = args.host or settings.host
    names = ", ".join(["web chat", *(c.name for c in channels)])
    err.print(f"Switchboard is running: http://{host}:{port}  ({names})  {json.dumps(settings.redacted())}",
              markup=False)
    uvicorn.run(create_app(runtime, channels), host=host, port=port, log_level="info", access_log=False,
                log_config=None)  # uvicorn's records go to the root handler (adapters/logs.py)
    return 0


def _cli_message(conversation: str, text: str, profile: str) -> Message:
    return Message(conversation=conversation, text=text, user=User(id="cli", name="cli"),
                   channel="cli", profile=profile, private=True)


def cmd_ask(args: argparse.Namespace) -> int:
    runtime = _open(_settings())

    async def run() -> Reply:
        try:
            return await runtime.engine.handle(_cli_message(f"cli:{uuid.uuid4().hex}", args.question, args.profile))
        finally:
            await runtime.close()
    reply = asyncio.run(run())
    _print_reply(reply, args.json)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    runtime = _open(_settings())
    conversation = f"cli:{args.conversation or uuid.uuid4().hex}"
    profile = runtime.profiles.get(args.profile)
    console.print(f"[bold]{profile.name}[/bold] — {profile.text('greeting', profile.language)}")
    console.print("[dim]/reset forgets the conversation, /human asks for a person, /quit leaves.[/dim]")

    async def run() -> None:
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
                _print_reply(await runtime.engine.handle(message))
        finally:
            await runtime.close()
    asyncio.run(run())
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.exists():
        raise SwitchboardError(f"no such file or folder: {path}")
    runtime = Runtime.open(_settings())
    source = args.source or path.resolve().stem
    try:
        with _progress_bar() as bar:
            report = runtime.ingest(path, source, _ingest_progress(bar, source, path))
        console.print(f"{source}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
                      f"{report.removed} removed; {report.chunks_embedded} chunks embedded, "
                      f"{report.chunks_reused} reused")
        for failure in report.failures:
            err.print(f"[yellow]skipped[/yellow] {failure.error}")
    finally:
        asyncio.run(runtime.close())
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from bot.evaluation import evaluate_answers
    from knowledge.embeddings import E5Embedder
    from knowledge.evaluation import RetrievalEval, read_jsonl

    if args.kind == "retrieval":
        if not args.corpus:
            raise SwitchboardError("eval retrieval needs --corpus C.jsonl")
        corpus = read_jsonl(args.corpus, ("id",))
        queries = read_jsonl(args.queries, ("query", "relevant"))
        with _progress_bar() as bar:
            task = bar.add_task("indexing", total=len(corpus), item="")
            evaluation = RetrievalEval(corpus, E5Embedder(),
                                       lambda r, item: bar.update(task, advance=1, item=item.title[:40]))
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


def cmd_worker(args: argparse.Namespace) -> int:
    from bot.worker import run_worker

    asyncio.run(run_worker(_settings(), interval=args.interval, once=args.once))
    return 0


def _with_settings(command: Callable[[argparse.Namespace, Settings], int]) -> Callable[[argparse.Namespace], int]:
    return lambda args: command(args, _settings())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="switchboard", description="An AI support bot for Slack, Telegram and Teams.")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the web process (web chat, channel webhooks)")
    serve.add_argument("--port", type=int, default=0, help="port (default: $PORT or 8000)")
    serve.add_argument("--host", default="", help="address to bind (default: $HOST or 127.0.0.1)")
    serve.set_defaults(func=cmd_serve)
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
    ingest.set_defaults(func=cmd_ingest)
    cli_sources.add_parsers(sub, _with_settings)
    ev = sub.add_parser("eval", help="measure retrieval or answers on your own data")
    ev.add_argument("kind", choices=["retrieval", "answers"])
    ev.add_argument("--corpus", default="")
    ev.add_argument("--queries", required=True)
    ev.add_argument("--mode", choices=["lexical", "dense", "hybrid"], default="hybrid")
    ev.add_argument("--profile", default="")
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
    worker.set_defaults(func=cmd_worker)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from adapters import logs  # one root handler that redacts secrets from every logger's records

    logs.configure(os.environ.get("LOG_LEVEL", "WARNING"), logs.secrets_in(os.environ))
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (SwitchboardError, EvalDataError, FileNotFoundError) as exc:
        err.print(f"[red]switchboard: error:[/red] {exc}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
