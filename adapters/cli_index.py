"""The `switchboard migrate` and `switchboard index copy` commands: the event database's and
the PostgreSQL index's schemas (bot/store_schema.py, knowledge/index_pg_schema.py), and moving
an SQLite index into PostgreSQL (knowledge/index_copy.py)."""
from __future__ import annotations

import argparse
from typing import Any, Callable

from rich.console import Console

from bot import store_schema
from bot.errors import ConfigError, SwitchboardError
from bot.settings import Settings
from bot.store import connect, describe
from knowledge import index_pg_schema
from knowledge.index import IndexOpenError
from knowledge.indexes import is_postgres, open_index, sqlite_path

console = Console(highlight=False)


def _mask(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def migrate_events(settings: Settings) -> None:
    """Apply the event database's pending migrations (DATABASE_URL; every process also does on start)."""
    try:
        engine = connect(settings.database_url, migrate=False)
        try:
            done = store_schema.migrate(engine)
        finally:
            engine.dispose()
    except ConfigError:
        raise
    except Exception as exc:  # unreachable, no right to alter
        raise SwitchboardError(f"cannot migrate the event database at {_mask(settings.database_url)}: "
                               f"{describe(exc)}") from exc
    for version, name in done:
        console.print(f"event database: applied {version}: {name}", markup=False, soft_wrap=True)
    console.print(f"The event database at {_mask(settings.database_url)} is at version {store_schema.LATEST}"
                  f"{'' if done else ', nothing to do'}.", markup=False, soft_wrap=True)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Apply the event database's pending migrations (DATABASE_URL), then the PostgreSQL
    index's (INDEX_URL, or --index-url)."""
    migrate_events(settings)
    url = args.index_url or settings.index_url
    schema = args.schema or settings.index_schema
    if not url:
        console.print(f"The knowledge index is the SQLite file {settings.index_path}: it needs no migration "
                      "(set INDEX_URL=postgresql://… for a PostgreSQL index).", markup=False, soft_wrap=True)
        return 0
    if not is_postgres(url):
        raise ConfigError(f"--index-url must be postgresql://…, not {_mask(url)!r}")
    try:
        done = index_pg_schema.migrate(url, schema)
    except Exception as exc:  # psycopg's errors: unreachable, no pgvector, no right to create
        raise SwitchboardError(f"cannot migrate the knowledge index at {_mask(url)}: {exc}") from exc
    for version, name in done:
        console.print(f"applied {version}: {name}", markup=False)
    console.print(f"The knowledge index at {_mask(url)} (schema {schema}) is at version "
                  f"{index_pg_schema.LATEST}{'' if done else ', nothing to do'}.", markup=False, soft_wrap=True)
    return 0


def cmd_copy(args: argparse.Namespace, settings: Settings) -> int:
    """Copy an SQLite index into another index (a migrated, empty PostgreSQL schema) without embedding."""
    from knowledge.index_copy import copy_index

    if is_postgres(args.source):
        raise ConfigError("--from must be an SQLite index (sqlite:///path or a path)")
    source = sqlite_path(args.source)
    if not source.is_file():
        raise ConfigError(f"--from: no index file at {source}")
    target_location = args.target or settings.index_url
    if not target_location:
        raise ConfigError("--to is needed (or INDEX_URL)")
    schema = args.schema or settings.index_schema
    try:
        target = open_index(target_location, schema)
    except IndexOpenError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        if target.stats()["documents"] or target.sources():
            raise ConfigError(f"{_mask(str(target_location))} already holds an index: copy into an empty one")
        copied = copy_index(source, target)
    finally:
        target.close()
    console.print(f"Copied {copied.sources} source(s), {copied.documents} document(s) and {copied.chunks} chunk(s) "
                  f"from {source} to {_mask(str(target_location))}, without embedding.", markup=False, soft_wrap=True)
    return 0


def add_parsers(sub: Any, run: Callable[[Callable[[argparse.Namespace, Settings], int]], Callable]) -> None:
    """The `migrate` and `index copy` sub-commands; `run` wraps a command with the settings."""
    migrate = sub.add_parser("migrate", help="create or update the event database's tables (DATABASE_URL) and the "
                                             "PostgreSQL knowledge index's (INDEX_URL)")
    migrate.add_argument("--index-url", default="", help="postgresql://… (default: $INDEX_URL)")
    migrate.add_argument("--schema", default="", help="the index's schema (default: $INDEX_SCHEMA or knowledge)")
    migrate.set_defaults(func=run(cmd_migrate))
    index = sub.add_parser("index", help="move a knowledge index between SQLite and PostgreSQL")
    actions = index.add_subparsers(dest="action", required=True)
    copy = actions.add_parser("copy", help="copy an SQLite index into an empty one, without embedding again")
    copy.add_argument("--from", dest="source", required=True, help="sqlite:///path/to/index.sqlite3")
    copy.add_argument("--to", dest="target", default="", help="postgresql://… (default: $INDEX_URL); run "
                                                              "`switchboard migrate` on it first")
    copy.add_argument("--schema", default="", help="the target's schema (default: $INDEX_SCHEMA or knowledge)")
    copy.set_defaults(func=run(cmd_copy))
