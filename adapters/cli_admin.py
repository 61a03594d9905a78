"""`switchboard admin …`: operator accounts for the console at /admin (docs/admin.md).

`admin create EMAIL --role admin|agent` makes an account in the event database
(DATABASE_URL) and prints its one-time password once: the operator chooses their own at
the first sign-in. `admin list` shows the accounts.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

from rich.console import Console
from sqlmodel import Session, select

from bot.operators import ROLES, Operator, Operators
from bot.settings import Settings
from bot.store import connect

console = Console(stderr=False, highlight=False)


def add_parsers(sub: Any, run: Callable[[Callable[[argparse.Namespace, Settings], int]], Callable]) -> None:
    """The `admin` sub-commands; `run` wraps a command with the settings."""
    admin = sub.add_parser("admin", help="operator accounts for the web console at /admin")
    actions = admin.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make an operator account and print its one-time password")
    create.add_argument("email")
    create.add_argument("--role", choices=ROLES, default="agent",
                        help="admin: every page; agent: the inbox and conversations (default agent)")
    create.add_argument("--name", default="", help="the name customers see (default: the e-mail's user part)")
    create.set_defaults(func=run(cmd_create))
    actions.add_parser("list", help="the operator accounts").set_defaults(func=run(cmd_list))


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    engine = connect(settings.database_url)
    try:
        operator, password = Operators(engine).create(args.email, args.role, args.name)
    finally:
        engine.dispose()
    console.print(f"Created {operator.role} {operator.email}. One-time password (shown once, to be changed at "
                  f"the first sign-in at /admin/login):", markup=False, soft_wrap=True)
    console.print(password, markup=False)
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    engine = connect(settings.database_url)
    try:
        Operators(engine)
        with Session(engine) as session:
            operators = list(session.exec(select(Operator).order_by(Operator.id)))
    finally:
        engine.dispose()
    for operator in operators:
        state = "active" if operator.active else "disabled"
        console.print(f"{operator.email}\t{operator.role}\t{operator.name}\t{state}", markup=False)
    if not operators:
        console.print("No operator account yet: switchboard admin create EMAIL --role admin", markup=False)
    return 0
