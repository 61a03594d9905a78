"""A fake Notion API (version 2025-09-03) speaking the real wire format, for connector tests and benchmarks.

Point notion-client at it with ``Client(auth=fake.token, base_url=url)`` where ``url`` comes from
``tests.fakes.server.serve(fake.app())``. It serves ``POST /v1/search``, ``GET /v1/pages/{id}``,
``GET /v1/blocks/{id}``, ``GET /v1/blocks/{id}/children``, ``GET /v1/databases/{id}``,
``GET /v1/data_sources/{id}`` and ``POST /v1/data_sources/{id}/query`` with Notion's JSON shapes:
lists are ``{"object": "list", "results", "next_cursor", "has_more", "type", <type>: {}}``, paginated
with cursors (at most ``page_size`` results, so tests cross pages with a small one), and errors are
``{"object": "error", "status", "code", "message", "request_id"}``. ``Authorization: Bearer`` and
``Notion-Version`` are checked. Timestamps are rounded down to the minute, as Notion's are, and come
from ``fake.now`` (epoch seconds), which only ``advance`` moves.

Tests build content with ``add_page`` / ``add_database`` / ``add_row`` and the block helpers below
(``heading``, ``paragraph``, ``bullet``, ``toggle``, ``table``…), change it with ``edit``,
``edit_block``, ``archive``, ``trash`` and ``unshare``, keep pages out of search (whose index lags in
Notion) with ``unindexed``, script failures with ``fail`` (429 with Retry-After, 5xx) and ``revoke``,
and read ``calls``. ``generate(n)`` builds n realistic pages fast (2,000 in well under a second).
State is guarded by one lock, so tests may change it while a sync is running.
"""
from __future__ import annotations

import datetime as dt
import itertools
import random
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

NOTION_VERSION = "2025-09-03"
_NAMESPACE = uuid.UUID("6f1c2a9e-6b1e-4d59-9c55-2a6a0f8f0b11")


# ---- content builders (block specs: Notion block JSON plus an optional "children" list) ---------

def rich(text: str, *, bold: bool = False, code: bool = False, href: str | None = None) -> dict:
    """One rich text item of type text."""
    return {"type": "text", "text": {"content": text, "link": {"url": href} if href else None},
            "annotations": {"bold": bold, "italic": False, "strikethrough": False, "underline": False,
                            "code": code, "color": "default"}, "plain_text": text, "href": href}


def mention_user(name: str, user_id: str = "5e2b7f4a-0c1d-4e8a-9b3f-7a6d5c4b3a21") -> dict:
    return {"type": "mention", "mention": {"type": "user", "user": {"object": "user", "id": user_id}},
            "annotations": rich("")["annotations"], "plain_text": f"@{name}", "href": None}


def _rt(text: str | list) -> list:
    return [rich(text)] if isinstance(text, str) else list(text)


def block(kind: str, children: Iterable[dict] = (), **payload: Any) -> dict:
    return {"type": kind, kind: payload, "children": list(children)}


def paragraph(text: str | list, *children: dict) -> dict:
    return block("paragraph", children, rich_text=_rt(text), color="default")


def heading(level: int, text: str | list, *children: dict) -> dict:
    return block(f"heading_{level}", children, rich_text=_rt(text), color="default", is_toggleable=bool(children))


def bullet(text: str | list, *children: dict) -> dict:
    return block("bulleted_list_item", children, rich_text=_rt(text), color="default")


def numbered(text: str | list, *children: dict) -> dict:
    return block("numbered_list_item", children, rich_text=_rt(text), color="default")


def todo(text: str | list, checked: bool = False) -> dict:
    return block("to_do", rich_text=_rt(text), checked=checked, color="default")


def toggle(text: str | list, *children: dict) -> dict:
    return block("toggle", children, rich_text=_rt(text), color="default")


def callout(text: str | list, *children: dict, emoji: str = "💡") -> dict:
    return block("callout", children, rich_text=_rt(text), icon={"type": "emoji", "emoji": emoji},
                 color="gray_background")


def quote(text: str | list) -> dict:
    return block("quote", rich_text=_rt(text), color="default")


def code(text: str, language: str = "python") -> dict:
    return block("code", rich_text=_rt(text), caption=[], language=language)


def equation(expression: str) -> dict:
    return block("equation", expression=expression)


def divider() -> dict:
    return block("divider")


def image(url: str) -> dict:
    return block("image", type="external", external={"url": url}, caption=[])


def table(*rows: list[str], header: bool = True) -> dict:
    cells = [block("table_row", cells=[_rt(c) for c in row]) for row in rows]
    return block("table", cells, table_width=max(len(r) for r in rows), has_column_header=header,
                 has_row_header=False)


def malformed() -> dict:
    """A paragraph whose payload lacks its required rich_text (what a broken upstream could send)."""
    return block("paragraph", color="default")


# ---- the fake ------------------------------------------------------------------------------------

@dataclass
class Call:
    method: str
    path: str
    body: dict[str, Any]
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0  # the HTTP status answered


@dataclass
class _Failure:
    times: int
    status: int
    retry_after: float | None
    path: str | None


class NotionError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _missing(kind: str, object_id: str) -> NotionError:
    return NotionError(404, "object_not_found", f"Could not find {kind} with ID: {object_id}. Make sure the "
                       "relevant pages and databases are shared with your integration.")


def iso(epoch: float) -> str:
    """Notion's timestamp format, rounded down to the minute like Notion's last_edited_time."""
    minute = dt.datetime.fromtimestamp(epoch - epoch % 60, dt.timezone.utc)
    return minute.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class FakeNotion:
    """In-memory workspace content shared with one integration, served over HTTP by `app()`."""

    token: str = "ntn_fake_integration_token_0123456789"
    page_size: int = 100
    now: float = 1_767_268_800.0  # 2026-01-01T12:00:00Z
    user: str = "5e2b7f4a-0c1d-4e8a-9b3f-7a6d5c4b3a21"
    calls: list[Call] = field(default_factory=list)
    pages: dict[str, dict] = field(default_factory=dict)  # id -> page record
    blocks: dict[str, dict] = field(default_factory=dict)  # id -> block record
    children: dict[str, list[str]] = field(default_factory=dict)  # page or block id -> child block ids
    databases: dict[str, dict] = field(default_factory=dict)
    data_sources: dict[str, dict] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # name -> id, for people properties
    unindexed: set[str] = field(default_factory=set)  # page ids search misses, as new pages until indexed

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._failures: list[_Failure] = []
        self._revoked = False

    # ---- building content (tests and benchmarks) --------------------------------------------------
    def new_id(self) -> str:
        return str(uuid.uuid5(_NAMESPACE, str(next(self._ids))))

    def add_page(self, title: str, blocks: Iterable[dict] = (), *, parent: str | None = None) -> str:
        """A page at the workspace's top level, or under page `parent` (as a child_page block there)."""
        with self._lock:
            page_id = self.new_id()
            self.pages[page_id] = self._record(page_id, self._parent(parent),
                                               {"title": {"id": "title", "type": "title", "title": _rt(title)}})
            if parent:
                self._insert(parent, [block("child_page", title=title)], block_id=page_id)
            self._insert(page_id, blocks)
            return page_id

    def add_database(self, title: str, columns: dict[str, str], *, parent: str) -> str:
        """A database (with one data source) under page `parent`; `columns` maps property names to
        types, one of them "title". Returns the database id (`data_source_of` gives the other)."""
        with self._lock:
            database_id, source_id = self.new_id(), self.new_id()
            schema = {name: {"id": "title" if kind == "title" else f"p{n}", "name": name, "type": kind, kind: {}}
                      for n, (name, kind) in enumerate(columns.items())}
            self.databases[database_id] = {"id": database_id, "title": title, "parent": self._parent(parent),
                                           "sources": [source_id], "created": self.now, "edited": self.now}
            self.data_sources[source_id] = {"id": source_id, "title": title, "database": database_id,
                                            "schema": schema, "created": self.now, "edited": self.now}
            self._insert(parent, [block("child_database", title=title)], block_id=database_id)
            return database_id

    def data_source_of(self, database_id: str) -> str:
        return self.databases[database_id]["sources"][0]

    def add_row(self, database_id: str, values: dict[str, Any], blocks: Iterable[dict] = ()) -> str:
        """A row (a page) of the database, `values` by property name in plain Python: str for
        title/rich_text/select/status/url/email/date, list of str for multi_select and people."""
        with self._lock:
            source_id = self.data_source_of(database_id)
            page_id = self.new_id()
            parent = {"type": "data_source_id", "data_source_id": source_id, "database_id": database_id}
            self.pages[page_id] = self._record(page_id, parent, self._properties(source_id, values))
            self._insert(page_id, blocks)
            return page_id

    def edit(self, page_id: str, *, title: str | None = None, blocks: Iterable[dict] | None = None,
             values: dict[str, Any] | None = None) -> None:
        """Change a page's title, replace its content or a row's values; bumps last_edited_time."""
        with self._lock:
            page = self.pages[page_id]
            if title is not None:
                prop = next(p for p in page["properties"].values() if p["type"] == "title")
                prop["title"] = _rt(title)
            if values:
                source = page["parent"].get("data_source_id")
                page["properties"].update(self._properties(source, values))
            if blocks is not None:
                for child in self.children.pop(page_id, []):
                    self._drop(child)
                self._insert(page_id, blocks)
            page["edited"] = self.now

    def edit_block(self, block_id: str, text: str) -> None:
        """Change one block's text; like Notion, this bumps its page's last_edited_time."""
        with self._lock:
            record = self.blocks[block_id]
            record["json"][record["json"]["type"]]["rich_text"] = _rt(text)
            record["edited"] = self.now
            self.pages[self._page_of(block_id)]["edited"] = self.now

    def archive(self, page_id: str) -> None:
        with self._lock:
            self.pages[page_id].update(archived=True, edited=self.now)

    def trash(self, page_id: str) -> None:
        with self._lock:
            self.pages[page_id].update(in_trash=True, archived=True, edited=self.now)

    def unshare(self, page_id: str) -> None:
        """The page is no longer shared with the integration: it disappears from every answer."""
        with self._lock:
            self.pages[page_id]["shared"] = False

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def fail(self, times: int = 1, status: int = 429, retry_after: float | None = 1, path: str | None = None) -> None:
        """The next `times` calls (to paths containing `path`, if given) answer `status`: 429
        rate_limited with Retry-After, 403/500/503/504 with Notion's JSON, 502 with a gateway's text."""
        with self._lock:
            self._failures.append(_Failure(times, status, retry_after, path))

    def revoke(self) -> None:
        """The integration's token stops working (401 unauthorized)."""
        with self._lock:
            self._revoked = True

    def calls_to(self, fragment: str, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if fragment in c.path and (method is None or c.method == method)]

    def generate(self, n: int, *, seed: int = 0, parent: str | None = None) -> list[str]:
        """`n` realistic help-centre pages (headings, paragraphs, nested lists, a toggle, a table,
        code, a callout), fast enough for thousands; returns their ids."""
        rng = random.Random(seed)
        return [self.add_page(f"{rng.choice(TOPICS)} ({i + 1})", _page_blocks(rng), parent=parent)
                for i in range(n)]

    # ---- internals -----------------------------------------------------------------------------
    def _record(self, page_id: str, parent: dict, properties: dict) -> dict:
        return {"id": page_id, "parent": parent, "properties": properties, "created": self.now,
                "edited": self.now, "archived": False, "in_trash": False, "shared": True}

    def _parent(self, parent: str | None) -> dict:
        if parent is None:
            return {"type": "workspace", "workspace": True}
        if parent in self.pages:
            return {"type": "page_id", "page_id": parent}
        if parent in self.blocks:
            return {"type": "block_id", "block_id": parent}
        raise KeyError(f"no page or block {parent}")

    def _insert(self, parent_id: str, specs: Iterable[dict], block_id: str | None = None) -> None:
        siblings = self.children.setdefault(parent_id, [])
        parent = ({"type": "page_id", "page_id": parent_id} if parent_id in self.pages
                  else {"type": "block_id", "block_id": parent_id})
        for spec in specs:
            spec = dict(spec)
            kids = spec.pop("children", [])
            bid = block_id or self.new_id()
            self.blocks[bid] = {"json": spec, "parent": parent, "created": self.now, "edited": self.now}
            siblings.append(bid)
            if kids and spec["type"] not in ("child_page", "child_database"):
                self._insert(bid, kids)

    def _drop(self, block_id: str) -> None:
        if self.blocks.pop(block_id)["json"]["type"] in ("child_page", "child_database"):
            return  # the id is the child page's (or database's): its content is its own
        for child in self.children.pop(block_id, []):
            self._drop(child)

    def _page_of(self, block_id: str) -> str:
        parent = self.blocks[block_id]["parent"]
        return parent["page_id"] if parent["type"] == "page_id" else self._page_of(parent["block_id"])

    def _user(self, name: str) -> dict:
        user_id = self.users.setdefault(name, str(uuid.uuid5(_NAMESPACE, f"user:{name}")))
        return {"object": "user", "id": user_id, "name": name, "avatar_url": None, "type": "person",
                "person": {"email": f"{name.lower().replace(' ', '.')}@example.com"}}

    def _properties(self, source_id: str, values: dict[str, Any]) -> dict:
        schema = self.data_sources[source_id]["schema"]
        return {name: {"id": schema[name]["id"], "type": schema[name]["type"],
                       schema[name]["type"]: self._value(schema[name]["type"], value)}
                for name, value in values.items()}

    def _value(self, kind: str, value: Any) -> Any:
        option = lambda name: {"id": str(uuid.uuid5(_NAMESPACE, name))[:4], "name": name, "color": "default"}
        return {"title": _rt, "rich_text": _rt, "select": option, "status": option,
                "multi_select": lambda v: [option(x) for x in v],
                "people": lambda v: [self._user(x) for x in v],
                "date": lambda v: {"start": v, "end": None, "time_zone": None},
                }.get(kind, lambda v: v)(value)

    # ---- JSON ----------------------------------------------------------------------------------
    def _page_json(self, page_id: str) -> dict:
        page = self.pages[page_id]
        user = {"object": "user", "id": self.user}
        return {"object": "page", "id": page["id"], "created_time": iso(page["created"]),
                "last_edited_time": iso(page["edited"]), "created_by": user, "last_edited_by": user,
                "cover": None, "icon": None, "parent": page["parent"], "archived": page["archived"],
                "in_trash": page["in_trash"], "is_locked": False, "properties": page["properties"],
                "url": f"https://www.notion.so/{_slug(page)}-{page_id.replace('-', '')}", "public_url": None}

    def _block_json(self, block_id: str) -> dict:
        record = self.blocks[block_id]
        user = {"object": "user", "id": self.user}
        has_children = bool(self.children.get(block_id))  # a child_page block's id is its page's
        return {"object": "block", "id": block_id, "parent": record["parent"], "created_time": iso(record["created"]),
                "last_edited_time": iso(record["edited"]), "created_by": user, "last_edited_by": user,
                "has_children": has_children, "archived": False, "in_trash": False, **record["json"]}

    def _database_json(self, database_id: str) -> dict:
        db = self.databases[database_id]
        return {"object": "database", "id": database_id, "title": _rt(db["title"]), "description": [],
                "parent": db["parent"], "is_inline": True, "archived": False, "in_trash": False,
                "created_time": iso(db["created"]), "last_edited_time": iso(db["edited"]),
                "data_sources": [{"id": s, "name": self.data_sources[s]["title"]} for s in db["sources"]],
                "icon": None, "cover": None, "url": f"https://www.notion.so/{database_id.replace('-', '')}",
                "public_url": None}

    def _source_json(self, source_id: str) -> dict:
        source = self.data_sources[source_id]
        database = self.databases[source["database"]]
        user = {"object": "user", "id": self.user}
        return {"object": "data_source", "id": source_id, "created_time": iso(source["created"]),
                "last_edited_time": iso(source["edited"]), "created_by": user, "last_edited_by": user,
                "title": _rt(source["title"]), "description": [], "icon": None, "cover": None,
                "parent": {"type": "database_id", "database_id": source["database"]},
                "database_parent": database["parent"], "is_inline": True, "archived": False,
                "in_trash": False, "properties": source["schema"],
                "url": f"https://www.notion.so/{source['database'].replace('-', '')}", "public_url": None}

    def _list(self, items: list[dict], kind: str, params: dict) -> dict:
        size = min(int(params.get("page_size") or 100), 100, self.page_size)
        start = 0
        if params.get("start_cursor"):
            ids = [i["id"] for i in items]
            if params["start_cursor"] not in ids:
                raise NotionError(400, "validation_error", "start_cursor provided is invalid.")
            start = ids.index(params["start_cursor"])
        more = start + size < len(items)
        return {"object": "list", "results": items[start:start + size],
                "next_cursor": items[start + size]["id"] if more else None, "has_more": more,
                "type": kind, kind: {}, "request_id": str(uuid.uuid4())}

    # ---- endpoints -----------------------------------------------------------------------------
    def _search(self, params: dict, body: dict) -> dict:
        kind = (body.get("filter") or {}).get("value")
        if kind not in (None, "page", "data_source"):
            raise NotionError(400, "validation_error", 'body failed validation: body.filter.value should be '
                              f'`"page"` or `"data_source"`, instead was `"{kind}"`.')
        found: list[dict] = []
        if kind in (None, "page"):
            found += [self._page_json(page_id) for page_id, p in self.pages.items()
                      if p["shared"] and page_id not in self.unindexed]
        if kind in (None, "data_source"):
            found += [self._source_json(s) for s in self.data_sources]
        query = str(body.get("query") or "").lower()
        found = [f for f in found if query in _plain_title(f).lower()]
        sort = body.get("sort") or {}
        if sort.get("timestamp") == "last_edited_time":
            found.sort(key=lambda f: f["last_edited_time"], reverse=sort.get("direction") != "ascending")
        return self._list(found, "page_or_data_source", {**params, **body})

    def _get(self, kind: str, object_id: str) -> dict:
        store, render = {"page": (self.pages, self._page_json), "block": (self.blocks, self._block_json),
                         "database": (self.databases, self._database_json),
                         "data source": (self.data_sources, self._source_json)}[kind]
        if object_id not in store or not self.pages.get(object_id, {}).get("shared", True):
            raise _missing(kind, object_id)
        return render(object_id)

    def _children(self, block_id: str, params: dict) -> dict:
        self._get("page" if block_id in self.pages else "block", block_id)
        return self._list([self._block_json(b) for b in self.children.get(block_id, [])], "block", params)

    def _query(self, source_id: str, params: dict, body: dict) -> dict:
        self._get("data source", source_id)
        rows = [self._page_json(p["id"]) for p in self.pages.values() if p["shared"] and not p["in_trash"]
                and not p["archived"] and p["parent"].get("data_source_id") == source_id]
        return self._list(rows, "page_or_data_source", {**params, **body})

    # ---- HTTP ----------------------------------------------------------------------------------
    def app(self) -> Starlette:
        def route(path: str, method: str, handler) -> Route:
            async def endpoint(request: Request) -> Response:
                return await self._handle(request, handler)
            return Route(path, endpoint, methods=[method])

        return Starlette(routes=[
            route("/v1/search", "POST", lambda p, q, b: self._search(q, b)),
            route("/v1/pages/{id}", "GET", lambda p, q, b: self._get("page", p["id"])),
            route("/v1/blocks/{id}", "GET", lambda p, q, b: self._get("block", p["id"])),
            route("/v1/blocks/{id}/children", "GET", lambda p, q, b: self._children(p["id"], q)),
            route("/v1/databases/{id}", "GET", lambda p, q, b: self._get("database", p["id"])),
            route("/v1/data_sources/{id}", "GET", lambda p, q, b: self._get("data source", p["id"])),
            route("/v1/data_sources/{id}/query", "POST", lambda p, q, b: self._query(p["id"], q, b)),
        ])

    async def _handle(self, request: Request, handler) -> Response:
        body = await request.json() if (await request.body()) else {}
        call = Call(request.method, request.url.path, body, dict(request.query_params),
                    {k: v for k, v in request.headers.items() if k in ("notion-version", "user-agent")})
        with self._lock:
            self.calls.append(call)
            try:
                response = self._refusal(request) or JSONResponse(
                    handler(dict(request.path_params), dict(request.query_params), body))
            except NotionError as err:
                response = _error(err)
            call.status = response.status_code
        return response

    def _refusal(self, request: Request) -> Response | None:
        if self._revoked or request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(NotionError(401, "unauthorized", "API token is invalid."))
        if not request.headers.get("notion-version"):
            return _error(NotionError(400, "missing_version", "Notion-Version header failed validation: "
                                      "Notion-Version header should be defined, instead was `undefined`."))
        failure = next((f for f in self._failures if f.times > 0 and (f.path is None or f.path in request.url.path)),
                       None)
        if failure is None:
            return None
        failure.times -= 1
        return _failure_response(failure)


def _failure_response(failure: _Failure) -> Response:
    if failure.status == 429:
        response = _error(NotionError(429, "rate_limited", "You have been rate limited. Please try again in a "
                                      "few minutes."))
        if failure.retry_after is not None:
            response.headers["Retry-After"] = f"{failure.retry_after:g}"
        return response
    if failure.status == 502:
        return PlainTextResponse("error code: 502", status_code=502)  # from the gateway, not the API
    code, message = {403: ("restricted_resource", "API token does not have access to this resource."),
                     503: ("service_unavailable", "Notion is unavailable. Try again later."),
                     504: ("gateway_timeout", "Notion timed out. Try again later.")}.get(
        failure.status, ("internal_server_error", "Unexpected error occurred."))
    return _error(NotionError(failure.status, code, message))


def _error(err: NotionError) -> JSONResponse:
    return JSONResponse({"object": "error", "status": err.status, "code": err.code, "message": err.message,
                         "request_id": str(uuid.uuid4())}, status_code=err.status)


def _plain_title(obj: dict) -> str:
    if obj["object"] == "data_source":
        return "".join(t["plain_text"] for t in obj["title"])
    prop = next((p for p in obj["properties"].values() if p["type"] == "title"), {"title": []})
    return "".join(t["plain_text"] for t in prop["title"])


def _slug(page: dict) -> str:
    words = _plain_title({"object": "page", **page}).split()
    return "-".join("".join(ch for ch in w if ch.isalnum()) for w in words) or "Untitled"



# ---- generated content -----------------------------------------------------------------------------

TOPICS = ["Refund policy", "Shipping to Belgium", "Resetting your password", "Gift cards", "Warranty claims",
          "Changing an order", "Invoices and VAT", "Store opening hours", "Damaged parcels", "Loyalty points"]
SENTENCES = ["Orders placed before 2 pm leave the warehouse the same business day.",
             "Refunds reach the original payment method within five to ten business days.",
             "Customers can change the delivery address until the parcel is handed to the carrier.",
             "A gift card is valid for one year from the date of purchase.",
             "Warranty claims need the order number and a photo of the defect.",
             "Invoices show VAT for every country we deliver to.",
             "Agents escalate damaged parcels to the logistics team within one day.",
             "Loyalty points expire after eighteen months without a purchase.",
             "The support desk answers chats from 8 am to 8 pm on weekdays.",
             "Password reset links stay valid for thirty minutes."]
STEPS = ["Open the account page", "Choose the order", "Click Request a refund", "Pick a reason",
         "Attach a photo", "Confirm by email", "Print the return label", "Drop the parcel at a pickup point"]


def _page_blocks(rng: random.Random) -> list[dict]:
    """About twenty blocks of a typical help-centre page."""
    say = lambda k: " ".join(rng.sample(SENTENCES, k))  # noqa: E731
    steps = rng.sample(STEPS, 4)
    return [
        paragraph(say(2)),
        heading(2, "Overview"), paragraph([rich(say(1)), rich(" Important: ", bold=True), rich(say(1))]),
        bullet(say(1), bullet(say(1)), bullet(say(1))), bullet(say(1)),
        heading(2, "Steps"), *(numbered(step) for step in steps),
        toggle("Why does this take so long?", paragraph(say(2))),
        heading(3, "Costs"), table(["Country", "Days", "Price"], ["Belgium", str(rng.randint(2, 5)), "4.90"],
                                   ["Switzerland", str(rng.randint(4, 8)), "9.90"]),
        callout(say(1)), code(f"curl https://api.example.com/orders/{rng.randint(1000, 9999)}", "bash"),
        divider(), quote(say(1)), todo("Checked by the support lead", checked=rng.random() < 0.5),
    ]
