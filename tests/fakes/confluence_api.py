"""A fake Confluence speaking REST API v1 as Cloud (under /wiki, basic auth with an account's
email and API token) or Data Center (at the root, Bearer personal access token) does.

Serve it with ``serve(fake.app())`` and point the connector (or atlassian-python-api) at the
URL it yields. It answers ``GET /rest/api/content`` (spaceKey, type, status, start, limit,
expand), ``/rest/api/content/search`` (the CQL subset connectors send: space, type, id,
container, title and lastmodified clauses joined by ``and``; dates read in ``timezone``, the
account's, to the minute), ``/rest/api/content/{id}``, ``/rest/api/content/{id}/child/attachment``,
``/rest/api/space/{key}`` and attachment downloads, in Confluence's shapes: envelopes
``{results, start, limit, size, _links: {base, context, self, next?}}``, content expanded only
as asked, errors as ``{statusCode, data, message, reason}``. Pages are at most ``page_size``
items whatever ``limit`` asks, so clients must follow ``_links.next`` (Cloud's CQL search
pages with an opaque cursor, as Cloud does).

Tests change the state between calls (``add_page``, ``edit_page``, ``delete_page``,
``restrict``, ``add_attachment``, ``generate`` for many realistic pages), script failures
(``fail(429, retry_after=0)``, ``fail(500, times=9)``, ``revoke()`` for 401s) and read
``calls``. Everything is guarded by one lock: the server runs in another thread.
"""
from __future__ import annotations

import base64
import datetime as dt
import itertools
import re
import threading
import zlib
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Callable, Iterable
from urllib.parse import quote, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

UTC = dt.timezone.utc
MALFORMED = '<h2>Broken</h2><p>An <strong>unclosed tag</p><ac:structured-macro ac:name="code">'


@dataclass
class Page:
    id: str
    space: str
    title: str
    body: str  # storage format, served as is (so it may be malformed)
    when: dt.datetime
    version: int = 1
    author: str = "Ada Lovelace"
    labels: list[str] = field(default_factory=list)
    parent: str | None = None
    readers: list[str] = field(default_factory=list)  # users of the read restriction
    reader_groups: list[str] = field(default_factory=list)


@dataclass
class Attachment:
    id: str
    page: str
    title: str
    media_type: str
    data: bytes
    when: dt.datetime
    version: int = 1


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    authorization: str
    status: int = 0  # the HTTP status answered


class ApiError(Exception):
    """Answered as Confluence's error body with `status`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}

    def response(self) -> JSONResponse:
        body = {"statusCode": self.status, "message": self.message, "reason": HTTPStatus(self.status).phrase,
                "data": {"authorized": self.status not in (401, 403), "valid": True, "errors": [],
                         "successful": False}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class FakeConfluence:
    def __init__(self, *, cloud: bool = True, email: str = "bot@example.com", token: str = "confluence-test-token",
                 page_size: int = 5, timezone: dt.tzinfo = UTC):
        self.cloud, self.email, self.token, self.page_size, self.timezone = cloud, email, token, page_size, timezone
        self.context = "/wiki" if cloud else ""
        self.ignored_expansions: set[str] = set()  # e.g. {"restrictions"}: a server that won't show them
        self.spaces: dict[str, str] = {}
        self.pages: dict[str, Page] = {}
        self.attachments: dict[str, Attachment] = {}
        self.calls: list[Call] = []
        self._failures: list[tuple[int, float | None]] = []
        self._revoked = False
        self._ids = itertools.count(65537)
        self._lock = threading.RLock()

    # --- state, as tests and benchmarks change it ------------------------------------------

    def add_space(self, key: str, name: str = "") -> None:
        with self._lock:
            self.spaces[key] = name or f"{key} space"

    def add_page(self, space: str, title: str, body: str, *, when: dt.datetime | None = None,
                 labels: Iterable[str] = (), parent: str | None = None, author: str = "Ada Lovelace") -> Page:
        with self._lock:
            self.spaces.setdefault(space, f"{space} space")
            page = Page(str(next(self._ids)), space, title, body, when or dt.datetime.now(UTC), author=author,
                        labels=list(labels), parent=parent)
            self.pages[page.id] = page
            return page

    def edit_page(self, page_id: str, *, body: str | None = None, title: str | None = None,
                  when: dt.datetime | None = None) -> Page:
        with self._lock:
            page = self.pages[page_id]
            page.body = page.body if body is None else body
            page.title = title or page.title
            page.when, page.version = when or dt.datetime.now(UTC), page.version + 1
            return page

    def delete_page(self, page_id: str) -> None:
        """Gone for good (purged from the trash): its attachments too; children move up."""
        with self._lock:
            page = self.pages.pop(page_id)
            for child in self.pages.values():
                child.parent = page.parent if child.parent == page_id else child.parent
            self.attachments = {k: a for k, a in self.attachments.items() if a.page != page_id}

    def restrict(self, page_id: str, users: Iterable[str] = (), groups: Iterable[str] = ()) -> None:
        """Sets the page's read restriction (empty: none)."""
        with self._lock:
            self.pages[page_id].readers, self.pages[page_id].reader_groups = list(users), list(groups)

    def add_attachment(self, page_id: str, title: str, data: bytes, media_type: str = "application/octet-stream",
                       *, when: dt.datetime | None = None) -> Attachment:
        with self._lock:
            number = next(self._ids)
            attachment = Attachment(f"att{number}" if self.cloud else str(number), page_id, title, media_type,
                                    data, when or dt.datetime.now(UTC))
            self.attachments[attachment.id] = attachment
            return attachment

    def fail(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """The next `times` requests answer `status` (with Retry-After if given)."""
        with self._lock:
            self._failures += [(status, retry_after)] * times

    def revoke(self) -> None:
        """The token stops working: every request answers 401."""
        with self._lock:
            self._revoked = True

    def generate(self, n: int, space: str = "DOC", start: dt.datetime | None = None) -> list[Page]:
        """`n` realistic pages (headings, a nested list, a table; code and panels on some), 25 to a
        parent, modified a minute apart from `start` (default: 30 days ago)."""
        start = start or dt.datetime.now(UTC) - dt.timedelta(days=30)
        pages: list[Page] = []
        with self._lock:
            for i in range(n):
                topic = TOPICS[i % len(TOPICS)]
                parent = pages[i - i % 25].id if i % 25 else None
                pages.append(self.add_page(space, f"{topic.capitalize()} guide {i}", _generated_body(i, topic),
                                           when=start + dt.timedelta(minutes=i), labels=[topic.replace(" ", "-")],
                                           parent=parent, author=AUTHORS[i % len(AUTHORS)]))
        return pages

    def calls_to(self, fragment: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if fragment in c.path]

    # --- the HTTP side -----------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.endpoint, methods=["GET"])])

    async def endpoint(self, request: Request) -> Response:
        call = Call(request.method, request.url.path, dict(request.query_params),
                    request.headers.get("authorization", ""))
        with self._lock:
            self.calls.append(call)
            try:
                response = self._answer(request, call)
            except ApiError as exc:
                response = exc.response()
            call.status = response.status_code
        return response

    def _answer(self, request: Request, call: Call) -> Response:
        if self._failures:
            status, retry_after = self._failures.pop(0)
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            raise ApiError(status, "Rate limit exceeded" if status == 429 else "Service unavailable", headers)
        if self._revoked or call.authorization != self._expected_authorization():
            raise ApiError(401, "Current user not permitted to use Confluence")
        if not call.path.startswith(self.context + "/"):
            raise ApiError(404, "null for uri: " + call.path)
        rest, base = call.path[len(self.context):], str(request.base_url).rstrip("/") + self.context
        for pattern, handler in self._routes():
            if match := re.fullmatch(pattern, rest):
                return handler(base, rest, call.params, *match.groups())
        raise ApiError(404, "null for uri: " + call.path)

    def _expected_authorization(self) -> str:
        if self.cloud:
            return "Basic " + base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        return f"Bearer {self.token}"

    def _routes(self) -> list[tuple[str, Callable[..., Response]]]:
        return [(r"/rest/api/content", self._content_list), (r"/rest/api/content/search", self._search),
                (r"/rest/api/content/(\d+)", self._content),
                (r"/rest/api/content/(\d+)/child/attachment", self._child_attachments),
                (r"/rest/api/space/([^/]+)", self._space),
                (r"/download/attachments/(\d+)/([^/]+)", self._download)]

    def _content_list(self, base: str, rest: str, params: dict[str, str]) -> Response:
        space, status = params.get("spaceKey"), params.get("status", "current")
        pages = [p for p in self.pages.values() if params.get("type", "page") == "page"
                 and status in ("current", "any") and (not space or p.space == space)]
        return self._envelope(base, rest, params, pages, _expand(params, self.ignored_expansions))

    def _search(self, base: str, rest: str, params: dict[str, str]) -> Response:
        matches = _cql(params.get("cql", ""), self.timezone)
        items = [x for x in [*self.pages.values(), *self.attachments.values()] if matches(self._fields(x))]
        return self._envelope(base, rest, params, items, _expand(params, self.ignored_expansions), cursor=self.cloud)

    def _content(self, base: str, rest: str, params: dict[str, str], page_id: str) -> Response:
        if page_id not in self.pages:
            raise ApiError(404, f"No content found with id: ContentId{{id={page_id}}}")
        body = self._json(self.pages[page_id], base, _expand(params, self.ignored_expansions))
        body["_links"].update(base=base, context=self.context)
        return JSONResponse(body)

    def _child_attachments(self, base: str, rest: str, params: dict[str, str], page_id: str) -> Response:
        if page_id not in self.pages:
            raise ApiError(404, f"No content found with id: ContentId{{id={page_id}}}")
        items = [a for a in self.attachments.values() if a.page == page_id]
        return self._envelope(base, rest, params, items, _expand(params, self.ignored_expansions))

    def _space(self, base: str, rest: str, params: dict[str, str], key: str) -> Response:
        if key not in self.spaces:
            raise ApiError(404, f"No space found with key : {key}")
        return JSONResponse({"id": 98305 + list(self.spaces).index(key), "key": key, "name": self.spaces[key],
                             "type": "global", "status": "current",
                             "_links": {"webui": f"/spaces/{key}" if self.cloud else f"/display/{key}",
                                        "self": f"{base}/rest/api/space/{key}", "base": base,
                                        "context": self.context}})

    def _download(self, base: str, rest: str, params: dict[str, str], page_id: str, name: str) -> Response:
        for attachment in self.attachments.values():
            if attachment.page == page_id and attachment.title == name:  # the path arrives decoded
                return Response(attachment.data, media_type=attachment.media_type)
        raise ApiError(404, f"Attachment {name} not found")

    def _envelope(self, base: str, rest: str, params: dict[str, str], items: list, expand: set[str],
                  cursor: bool = False) -> Response:
        start = _decode_cursor(params["cursor"]) if cursor and params.get("cursor") else int(params.get("start", 0))
        limit = max(1, min(int(params.get("limit", 25)), self.page_size))
        chunk = items[start:start + limit]
        links = {"base": base, "context": self.context, "self": f"{base}{rest}?{urlencode(params)}"}
        if start + limit < len(items):
            more = {**params, "limit": str(limit), "start": str(start + limit)}
            if cursor:
                more.update(next="true", cursor=_encode_cursor(start + limit))
            links["next"] = f"{rest}?{urlencode(more)}"
        return JSONResponse({"results": [self._json(x, base, expand) for x in chunk], "start": start,
                             "limit": limit, "size": len(chunk), "_links": links})

    # --- content as Confluence shows it ----------------------------------------------------

    def _fields(self, item: Page | Attachment) -> dict[str, Any]:
        page = item if isinstance(item, Page) else self.pages[item.page]
        return {"type": "page" if isinstance(item, Page) else "attachment", "id": item.id, "space": page.space,
                "title": item.title, "lastmodified": item.when, "container": page.id if item is not page else ""}

    def _json(self, item: Page | Attachment, base: str, expand: set[str]) -> dict[str, Any]:
        if isinstance(item, Attachment):
            return self._attachment_json(item, base, expand)
        page, slug = item, quote(item.title.replace(" ", "+"), safe="+")
        out: dict[str, Any] = {
            "id": page.id, "type": "page", "status": "current", "title": page.title,
            "_expandable": {k: "" for k in ("container", "space", "body", "version", "ancestors", "restrictions",
                                            "metadata", "history", "children", "descendants") if k not in expand},
            "_links": {"webui": f"/spaces/{page.space}/pages/{page.id}/{slug}" if self.cloud
                       else f"/display/{page.space}/{slug}",
                       "tinyui": f"/x/{page.id}", "self": f"{base}/rest/api/content/{page.id}"}}
        if "space" in expand:
            out["space"] = {"key": page.space, "name": self.spaces[page.space], "type": "global", "status": "current"}
        if "version" in expand:
            out["version"] = self._version(page.author, page.when, page.version)
        if "body.storage" in expand or "body.storage.value" in expand:
            out["body"] = {"storage": {"value": page.body, "representation": "storage", "embeddedContent": []}}
        if "metadata.labels" in expand:
            labels = [{"prefix": "global", "name": n, "id": str(1000 + i), "label": n}
                      for i, n in enumerate(page.labels)]
            out["metadata"] = {"labels": {"results": labels, "start": 0, "limit": 200, "size": len(labels)}}
        if any(e.startswith("restrictions") for e in expand):
            out["restrictions"] = self._restrictions(page, base, expand)
        if any(e.split(".")[0] == "ancestors" for e in expand):
            inner = {e.split(".", 1)[1] for e in expand if e.startswith("ancestors.")}
            out["ancestors"] = [self._json(a, base, inner) for a in self._ancestors(page)]
        return out

    def _attachment_json(self, attachment: Attachment, base: str, expand: set[str]) -> dict[str, Any]:
        page, millis = self.pages[attachment.page], int(attachment.when.timestamp() * 1000)
        out: dict[str, Any] = {
            "id": attachment.id, "type": "attachment", "status": "current", "title": attachment.title,
            "metadata": {"mediaType": attachment.media_type, "comment": ""},
            "extensions": {"mediaType": attachment.media_type, "fileSize": len(attachment.data), "comment": ""},
            "_links": {"webui": f"/pages/viewpageattachments.action?pageId={page.id}&preview="
                                f"{quote(f'/{page.id}/{attachment.id}/{attachment.title}', safe='')}",
                       "download": f"/download/attachments/{page.id}/{quote(attachment.title)}"
                                   f"?version={attachment.version}&modificationDate={millis}&api=v2",
                       "self": f"{base}/rest/api/content/{attachment.id}"}}
        if "version" in expand:
            out["version"] = self._version(page.author, attachment.when, attachment.version)
        if "container" in expand:
            out["container"] = self._json(page, base, set())
        return out

    def _version(self, author: str, when: dt.datetime, number: int) -> dict[str, Any]:
        when_text = (when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
                     if self.cloud else when.astimezone(self.timezone).isoformat(timespec="milliseconds"))
        return {"by": self._user(author), "when": when_text, "message": "", "number": number, "minorEdit": False}

    def _user(self, name: str) -> dict[str, Any]:
        handle = re.sub(r"\W", "", name.lower())
        if self.cloud:
            return {"type": "known", "accountId": f"5b10ac8d82e05b22cc7d{zlib.crc32(handle.encode()) % 10**4:04d}",
                    "accountType": "atlassian", "publicName": name.split()[0], "displayName": name}
        return {"type": "known", "username": handle, "userKey": f"8a7f808a{handle}", "displayName": name}

    def _restrictions(self, page: Page, base: str, expand: set[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for kind, names in (("user", page.readers), ("group", page.reader_groups)):
            if f"restrictions.read.restrictions.{kind}" in expand:
                results = [self._user(n) if kind == "user" else {"type": "group", "name": n} for n in names]
                found[kind] = {"results": results, "start": 0, "limit": 200, "size": len(results)}
        read = {"operation": "read", "restrictions": found, "_expandable": {"content": f"/rest/api/content/{page.id}"},
                "_links": {"self": f"{base}/rest/api/content/{page.id}/restriction/byOperation/read"}}
        return {"read": read, "_expandable": {"update": ""},
                "_links": {"self": f"{base}/rest/api/content/{page.id}/restriction/byOperation"}}

    def _ancestors(self, page: Page) -> list[Page]:
        chain, parent = [], page.parent
        while parent and parent in self.pages:
            chain.insert(0, self.pages[parent])
            parent = self.pages[parent].parent
        return chain


def _expand(params: dict[str, str], ignored: set[str]) -> set[str]:
    wanted = {e.strip() for e in params.get("expand", "").split(",") if e.strip()}
    return {e for e in wanted if not any(e == i or e.startswith(i + ".") or f".{i}" in e for i in ignored)}


def _encode_cursor(start: int) -> str:
    return base64.urlsafe_b64encode(f"_sa_WyJcdDE2{start}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    return int(text.removeprefix("_sa_WyJcdDE2"))


# --- CQL (the subset connectors send) -----------------------------------------------------------

CLAUSE = re.compile(r"""\s*(\w+)\s*(>=|<=|!=|=|>|<|not\s+in|in)\s*("[^"]*"|'[^']*'|\([^)]*\)|[^\s()]+)\s*$""", re.I)
DATE_FORMATS = ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d")


def _cql(cql: str, timezone: dt.tzinfo) -> Callable[[dict[str, Any]], bool]:
    """A predicate over an item's fields; 400 (as Confluence answers) for what it can't read."""
    cql = re.sub(r"\s+order\s+by\s+.*$", "", cql, flags=re.I)
    tests = [_clause(part, timezone) for part in re.split(r"\s+and\s+", cql.strip(), flags=re.I) if part]
    if not tests:
        raise ApiError(400, "CQL was not parseable: empty query")
    return lambda fields: all(test(fields) for test in tests)


def _clause(text: str, timezone: dt.tzinfo) -> Callable[[dict[str, Any]], bool]:
    match = CLAUSE.match(text)
    if not match or match.group(1).lower() not in ("space", "type", "id", "container", "title", "lastmodified"):
        raise ApiError(400, f"Could not parse cql : {text}")
    name, op, raw = match.group(1).lower(), re.sub(r"\s+", " ", match.group(2).lower()), match.group(3)
    values = [_unquote(v) for v in raw[1:-1].split(",")] if raw.startswith("(") else [_unquote(raw)]
    if name == "lastmodified":
        when = _cql_date(values[0], timezone)
        compare = {">=": lambda a: a >= when, ">": lambda a: a > when, "<=": lambda a: a <= when,
                   "<": lambda a: a < when, "=": lambda a: a == when}.get(op)
        if compare is None:
            raise ApiError(400, f"Could not parse cql : {text}")
        return lambda fields: compare(fields["lastmodified"])
    if op in (">=", ">", "<=", "<"):
        raise ApiError(400, f"Could not parse cql : {text}")
    negate = op in ("!=", "not in")
    return lambda fields: (str(fields[name]) in values) != negate


def _unquote(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) > 1 and value[0] == value[-1] and value[0] in "\"'" else value


def _cql_date(value: str, timezone: dt.tzinfo) -> dt.datetime:
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(value, fmt).replace(tzinfo=timezone)
        except ValueError:
            continue
    raise ApiError(400, f"Could not parse cql : the date {value!r} is not in a format CQL reads")


# --- generated pages ----------------------------------------------------------------------------

TOPICS = ["returns", "shipping", "invoices", "warranty", "passwords", "subscriptions", "gift cards", "payments"]
COUNTRIES = ["Belgium", "France", "Germany", "Spain", "Italy", "the Netherlands"]
AUTHORS = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra"]


def _generated_body(i: int, topic: str) -> str:
    rows = "".join(f"<tr><td><p>{COUNTRIES[(i + k) % len(COUNTRIES)]}</p></td><td>{2 + (i + k) % 6} days</td></tr>"
                   for k in range(3))
    body = (f"<h1>{topic.capitalize()} guide {i}</h1>"
            f"<p>This page explains how {topic} work for customers of plan {i % 7}. Read it before answering a "
            f"ticket about {topic}; it is reviewed every quarter by the support team.</p>"
            f"<h2>Steps</h2><ol><li>Open <strong>Orders</strong> in the admin panel</li><li>Find the order"
            f"<ul><li>Check the {topic} status</li><li>Note the reference <code>ORD-{i:05d}</code></li></ul></li>"
            f"<li>Reply with the template <ac:link><ri:page ri:content-title=\"{topic} templates\" />"
            "</ac:link></li></ol>"
            f"<h2>Delays by country</h2><table><tbody><tr><th>Country</th><th>Delay</th></tr>{rows}</tbody></table>")
    if i % 3 == 0:
        body += ("<h2>From the command line</h2><ac:structured-macro ac:name=\"code\" ac:schema-version=\"1\">"
                 "<ac:parameter ac:name=\"language\">bash</ac:parameter><ac:plain-text-body><![CDATA["
                 f"# look the order up\nswitchboard orders show ORD-{i:05d} --{topic.replace(' ', '-')}"
                 "]]></ac:plain-text-body></ac:structured-macro>")
    if i % 4 == 0:
        body += ("<ac:structured-macro ac:name=\"warning\" ac:schema-version=\"1\"><ac:rich-text-body>"
                 f"<p>Never promise a {topic} date before the warehouse confirms it.</p>"
                 "</ac:rich-text-body></ac:structured-macro>")
    return body + "<ac:structured-macro ac:name=\"toc\" ac:schema-version=\"1\" />"
