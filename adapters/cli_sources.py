"""`switchboard sources …` and `switchboard sync`: add, list, sync, retry and remove
knowledge sources (Confluence, Notion, Google Drive, folders) from the terminal.

Settings come in from the composition root (adapters/cli.py); secrets stay in the
environment and are only named here (`--token-env`). A sync that fails prints the
source's status message (what to do) and exits 1; the index keeps what it had.
"""
from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from bot.errors import SwitchboardError
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge import sources
from knowledge.connectors.errors import ConnectorError
from knowledge.documents import Document, Failure
from knowledge.index import SourceInfo
from knowledge.ingest import Report
from knowledge.recheck import outdated
from knowledge.stripped import Stripped
from knowledge.sync import Busy, Syncer, UnknownSource

console = Console(stderr=False, highlight=False)
err = Console(stderr=True, highlight=False)


def add_parsers(sub: Any, run: Callable[[Callable[[argparse.Namespace, Settings], int]], Callable]) -> None:
    """The `sources` and `sync` sub-commands; `run` wraps a command with the settings."""
    src = sub.add_parser("sources", help="list, add, retry or remove knowledge sources")
    src.add_argument("--stripped", action="store_true", help="also list each document hidden content was stripped from")
    src.set_defaults(func=run(cmd_list))
    actions = src.add_subparsers(dest="action")
    listing = actions.add_parser("list", help="each source's status, counts and last sync")
    listing.add_argument("--stripped", action="store_true", help="also list each document hidden content was "
                         "stripped from")
    listing.set_defaults(func=run(cmd_list))
    add = actions.add_parser("add", help="add a source and sync it (confluence, notion, gdrive, folder)")
    add.add_argument("kind", choices=sorted(sources.KINDS))
    add.add_argument("name", help="the source's name (profiles list the sources they may read)")
    add.add_argument("path", nargs="?", help="folder sources: the folder or file")
    add.add_argument("--url", help="confluence: the site, e.g. https://acme.atlassian.net")
    add.add_argument("--space", action="append", dest="spaces", help="confluence: a space key (repeatable)")
    add.add_argument("--username", help="confluence cloud: the email the API token belongs to")
    add.add_argument("--datacenter", action="store_true", help="confluence: Data Center (a personal access token)")
    add.add_argument("--attachments", action="store_true", help="confluence: index PDF and text attachments")
    add.add_argument("--root", action="append", dest="roots", help="notion: a page or database id (repeatable)")
    add.add_argument("--visibility", choices=["public", "internal"], help="notion: who may be shown its pages")
    add.add_argument("--folder", action="append", dest="folders", help="gdrive: a folder id (repeatable)")
    add.add_argument("--drive", action="append", dest="drives", help="gdrive: a shared drive id (repeatable)")
    add.add_argument("--domain", help="gdrive: files shared with this domain count as public")
    add.add_argument("--base-url", help="notion: API address (self-hosted proxies, tests)")
    add.add_argument("--api-endpoint", help="gdrive: API address (tests)")
    add.add_argument("--token-env", help="the environment variable holding this source's secret")
    add.add_argument("--interval", type=int, help="seconds between incremental syncs (default 900)")
    add.add_argument("--prune-interval", type=int, help="seconds between deletion checks (default 86400)")
    add.add_argument("--no-sync", action="store_true", help="only save the source; the worker syncs it")
    add.set_defaults(func=run(cmd_add))
    retry = actions.add_parser("retry", help="sync a source again from scratch (after fixing what failed)")
    retry.add_argument("name")
    retry.set_defaults(func=run(cmd_retry))
    remove = actions.add_parser("remove", help="remove a source and everything indexed from it")
    remove.add_argument("name")
    remove.set_defaults(func=run(cmd_remove))
    sync = sub.add_parser("sync", help="sync one source, or all, now (incremental unless --full)")
    sync.add_argument("source", nargs="?")
    sync.add_argument("--full", action="store_true", help="a complete pass instead of the changes")
    sync.set_defaults(func=run(cmd_sync))


def _config(args: argparse.Namespace) -> dict[str, Any]:
    values = {"path": str(Path(args.path).resolve()) if args.path else None, "url": args.url,
              "spaces": args.spaces, "username": args.username, "roots": args.roots, "visibility": args.visibility,
              "folders": args.folders, "drives": args.drives, "domain": args.domain, "base_url": args.base_url,
              "api_endpoint": args.api_endpoint, "token_env": args.token_env, "interval": args.interval,
              "prune_interval": args.prune_interval}
    if args.kind == "confluence":
        values.update(cloud=not args.datacenter, attachments=args.attachments)
    config = {k: v for k, v in values.items() if v is not None}
    return {k: v for k, v in config.items() if k in sources.KINDS[args.kind].settings + sources.COMMON}


def _with_runtime(settings: Settings, work: Callable[[Runtime], int]) -> int:
    runtime = Runtime.open(settings)
    try:
        return work(runtime)
    finally:
        asyncio.run(runtime.close())


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    return _with_runtime(settings, lambda runtime: _table(runtime, getattr(args, "stripped", False)) or 0)


def _table(runtime: Runtime, list_stripped: bool = False) -> None:
    stripped = runtime.index.stripped()
    cleaned = Counter(s.source for s in stripped)
    table = Table("source", "kind", "status", "documents", "chunks", "failures", "stripped", "last sync", "problem")
    for s in runtime.index.sources():
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.last_sync)) if s.last_sync else "never"
        colour = {"success": "green", "failed": "red", "processing": "yellow"}.get(s.status, "white")
        table.add_row(s.name, s.kind, f"[{colour}]{s.status}[/{colour}]", str(s.documents), str(s.chunks),
                      str(s.failures), str(cleaned[s.name]), when, s.error or "")
    # piped output is 80 columns wide, which would fold names and problems: give the table room
    Console(highlight=False, width=max(console.width, 160)).print(table)
    for s in runtime.index.sources():
        _failed(s)
    _quarantined(runtime.index.flagged())
    if list_stripped:
        _stripped(stripped)
    elif stripped:
        console.print(f"hidden content was stripped from {len(stripped)} document(s): `switchboard sources --stripped` "
                      "lists them", markup=False, highlight=False, soft_wrap=True)
    for name, count in outdated(runtime.index).items():
        console.print(f"{name}: {count} document(s) were cleaned under older sanitizer rules: the next sync "
                      "cleans them again (a folder's, the next start)", markup=False, highlight=False)


def _failed(source: SourceInfo, shown: int = 5) -> None:
    """The documents of `source` that could not be read, the first `shown` by name, and why."""
    if not source.failures:
        return
    console.print(f"{source.name}: {source.failures} document(s) could not be read:", markup=False, highlight=False)
    for document_id, why in source.failed[:shown]:
        said = why if why.startswith(document_id) else f"{document_id}: {why}"  # a folder's names its file
        console.print(f"  - {said}", markup=False, highlight=False, soft_wrap=True)
    if source.failures > min(shown, len(source.failed)):
        console.print(f"  … and {source.failures - min(shown, len(source.failed))} more", markup=False)


def _quarantined(flags: list, shown: int = 5) -> None:
    """Documents in quarantine (knowledge/sanitize.py): per source, how many, the first few and why."""
    by_source: dict[str, dict[str, list]] = {}
    for f in flags:
        by_source.setdefault(f.source, {}).setdefault(f.document_id, []).append(f)
    for source, documents in by_source.items():
        console.print(f"{source}: {len(documents)} document(s) flagged for review (an instruction to an AI was "
                      "removed; the rest stays answerable):", markup=False, highlight=False)
        for document_id, found in list(documents.items())[:shown]:
            console.print(f"  - {document_id}: {found[0].kind}, {found[0].rule}: {found[0].snippet[:100]!r}",
                          markup=False, highlight=False, soft_wrap=True)
        if len(documents) > shown:
            console.print(f"  … and {len(documents) - shown} more", markup=False)


def _stripped(documents: list[Stripped]) -> None:
    """Each document the sanitizer stripped something from (knowledge/sanitize.py), by source:
    the kinds and how many pieces of each, e.g. `html_comment ×2, invisible ×14`."""
    by_source: dict[str, list[Stripped]] = {}
    for d in documents:
        by_source.setdefault(d.source, []).append(d)
    for source, found in by_source.items():
        console.print(f"{source}: hidden content stripped from {len(found)} document(s):", markup=False,
                      highlight=False, soft_wrap=True)
        for d in found:
            kinds = ", ".join(f"{kind} ×{n}" for kind, n in d.kinds)
            console.print(f"  - {d.document_id}: {kinds}", markup=False, highlight=False, soft_wrap=True)


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    try:
        config = sources.validate(args.kind, _config(args))
    except ConnectorError as exc:
        raise SwitchboardError(str(exc)) from None

    def add(runtime: Runtime) -> int:
        if runtime.index.source(args.name) is not None:
            raise SwitchboardError(f"a source named {args.name!r} exists: remove it first or pick another name")
        runtime.index.add_source(args.name, args.kind, config)
        console.print(f"added {args.kind} source {args.name}")
        return 0 if args.no_sync else _sync(runtime, [args.name], full=True)
    return _with_runtime(settings, add)


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    def sync(runtime: Runtime) -> int:
        names = [args.source] if args.source else [s.name for s in runtime.index.sources()]
        return _sync(runtime, names, full=args.full)
    return _with_runtime(settings, sync)


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    return _with_runtime(settings, lambda runtime: _sync(runtime, [args.name], full=True))


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    def remove(runtime: Runtime) -> int:
        if runtime.index.source(args.name) is None:
            raise SwitchboardError(f"no source named {args.name!r} (see `switchboard sources`)")
        console.print(f"removed {args.name}: {runtime.index.remove_source(args.name)} document(s)")
        return 0
    return _with_runtime(settings, remove)


def report_cleaning(report: Report) -> None:
    """What the sanitizer removed in a pass (knowledge/sanitize.py), per kind, and how many
    documents it put in quarantine; nothing when it removed nothing."""
    if report.stripped:
        console.print("hidden content and instructions removed: " + ", ".join(
            f"{kind} {n}" for kind, n in sorted(report.stripped.items())) +
            f" ({len(report.flagged)} document(s) flagged for review)", markup=False, highlight=False)


def _expected(syncer: Syncer, name: str, full: bool) -> int | None:
    """The bar's total (a complete pass lists the ids first, so it has an ETA); None: no total."""
    try:
        return syncer.expected(name, full)
    except UnknownSource as exc:
        raise SwitchboardError(str(exc)) from None
    except Exception:  # the sync itself reports what is wrong with the source
        return None


def _sync(runtime: Runtime, names: list[str], full: bool) -> int:
    syncer, status = runtime.syncer(), 0
    for name in names:
        with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("documents"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                      TextColumn("{task.fields[item]}", style="dim"), console=err) as bar:
            task = bar.add_task(name, total=_expected(syncer, name, full), item="")

            def progress(report: Report, item: Document | Failure) -> None:
                title = item.title if isinstance(item, Document) else f"skipped {item.document_id}"
                bar.update(task, completed=report.seen + len(report.failures) + 1, item=title[:50])
            try:
                report = syncer.sync(name, full=full, progress=progress)
            except (UnknownSource, Busy) as exc:
                raise SwitchboardError(str(exc)) from None
            except Exception:
                info = runtime.index.source(name)
                err.print(f"[red]{name}: sync failed:[/red] {info.error if info else 'see the log'}", soft_wrap=True)
                status = 1
                continue
        how = "complete" if report.full else "changes"
        console.print(f"{name} ({how}): {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
                      f"{report.removed} removed; {report.chunks_embedded} chunks embedded, "
                      f"{report.chunks_reused} reused" + (f"; {report.rechecked} re-checked under the sanitizer's "
                                                           "new rules" if report.rechecked else ""))
        report_cleaning(report)
        for failure in report.failures:
            err.print(f"[yellow]skipped[/yellow] {failure.document_id}: {failure.error}")
    return status
