"""The operator console at /admin: sign in, the inbox, and (for admins) the overview,
conversations, knowledge, knowledge gaps, profiles and audit pages, in the web process (docs/admin.md).

`AdminConsole(runtime)` builds the parts over the runtime's event database and handoff
service, registers the console's desk ("admin") and, once an operator account exists,
makes it the fallback desk: a profile without an agents channel then hands its
conversations to the inbox, so "Talk to a human" works on the embedded default. Every
route except the sign-in form goes through `Gate.guard` (adapters/admin/auth.py).
"""
from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from adapters.admin.auth import Gate, Visit
from adapters.admin.conversations import Conversations
from adapters.admin.feed import INBOX, PLATFORM, ConsoleDesk, Feed
from adapters.admin.gaps import GapsPage
from adapters.admin.html import table, tag, when
from adapters.admin.inbox import Inbox
from adapters.admin.knowledge import Knowledge
from adapters.admin.overview import Overview
from adapters.admin.profiles import ProfilesPage
from adapters.admin.source_forms import SourceForms
from bot.gaps import Gaps
from bot.operators import Operators


class AdminConsole:
    """The console's routes over an opened runtime (see the module docstring)."""

    def __init__(self, runtime: Any):
        self.runtime = runtime
        self.operators = Operators(runtime.events.engine)
        self.feed = Feed(runtime.events.engine)
        self.handoffs = runtime.handoffs
        self.handoffs.add_desk(PLATFORM, ConsoleDesk(self.feed))
        self.gate = Gate(self.operators, on_sign_in=lambda: self._staffed(True))
        self.inbox = Inbox(self.handoffs, self.operators, self.feed, runtime.engine)
        self.overview = Overview(runtime.events.engine)
        self.conversations = Conversations(runtime.events.engine, runtime.engine, self.operators)
        self.knowledge = Knowledge(runtime, self.operators)
        self.source_forms = SourceForms(runtime, self.operators, self.knowledge)
        self.profiles = ProfilesPage(runtime, lambda: self.handoffs.fallback_desk)
        self.gaps = GapsPage(Gaps(runtime.events.engine, runtime.memory, runtime.embedder), self.knowledge)
        self._staffed(self.operators.any())

    def _staffed(self, staffed: bool) -> None:
        """Send profiles without agents to the inbox while someone can answer there."""
        if staffed:
            self.handoffs.fallback_desk = INBOX
        elif self.handoffs.fallback_desk == INBOX:
            self.handoffs.fallback_desk = ""

    async def refresh(self) -> None:
        """Look again whether an operator account exists (the command line may have made one)."""
        self._staffed(await asyncio.to_thread(self.operators.any))

    async def home(self, visit: Visit) -> Response:
        return RedirectResponse("/admin/overview" if visit.role == "admin" else "/admin/inbox", status_code=303)

    async def missing(self, visit: Visit) -> Response:
        return visit.page("Not found", tag("p", "There is no such page."), status=404)

    async def audit(self, visit: Visit) -> Response:
        rows = [(when(e.at), e.operator, e.action.replace("_", " "), e.target) for e in await self.operators.trail()]
        return visit.page("Audit trail", table(("When", "Operator", "Action", "On"), rows), current="audit")

    def routes(self) -> list[BaseRoute]:
        guard, gate, inbox = self.gate.guard, self.gate, self.inbox

        async def login_page(request: Request) -> Response:
            return await gate.login_page(request)
        return [
            Route("/admin", guard(self.home)),
            Route("/admin/login", login_page, methods=["GET"]),
            Route("/admin/login", gate.login, methods=["POST"]),
            Route("/admin/logout", guard(gate.logout), methods=["POST"]),
            Route("/admin/password", guard(gate.password_page), methods=["GET"]),
            Route("/admin/password", guard(gate.password), methods=["POST"]),
            Route("/admin/inbox", guard(inbox.list_page)),
            Route("/admin/inbox/{id}", guard(inbox.detail_page)),
            Route("/admin/inbox/{id}/{action}", guard(inbox.act), methods=["POST"]),
            Route("/admin/api/inbox", guard(inbox.list_json, api=True)),
            Route("/admin/api/stream", guard(inbox.stream, api=True)),
            Route("/admin/conversations", guard(self.conversations.list_page)),
            Route("/admin/conversations/{key:path}", guard(self.conversations.record_page)),
            Route("/admin/overview", guard(self.overview.page, role="admin")),
            Route("/admin/api/metrics", guard(self.overview.api, role="admin", api=True)),
            Route("/admin/knowledge", guard(self.knowledge.page, role="admin")),
            Route("/admin/knowledge/add", guard(self.source_forms.add_page, role="admin"), methods=["GET"]),
            Route("/admin/knowledge/add", guard(self.source_forms.add, role="admin"), methods=["POST"]),
            Route("/admin/knowledge/catalog", guard(self.source_forms.catalog_page, role="admin"), methods=["GET"]),
            Route("/admin/knowledge/catalog", guard(self.source_forms.upload, role="admin"), methods=["POST"]),
            Route("/admin/knowledge/{name}/retry", guard(self.knowledge.retry, role="admin"), methods=["POST"]),
            Route("/admin/knowledge/{name}/qa", guard(self.knowledge.qa_page, role="admin"), methods=["GET"]),
            Route("/admin/knowledge/{name}/qa", guard(self.knowledge.qa_save, role="admin"), methods=["POST"]),
            Route("/admin/gaps", guard(self.gaps.page, role="admin")),
            Route("/admin/gaps/approve", guard(self.gaps.approve, role="admin"), methods=["POST"]),
            Route("/admin/profiles", guard(self.profiles.page, role="admin")),
            Route("/admin/audit", guard(self.audit, role="admin")),
            Route("/admin/api/{rest:path}", guard(self.missing, api=True), methods=["GET", "POST"]),
            Route("/admin/{rest:path}", guard(self.missing), methods=["GET", "POST"]),
        ]
