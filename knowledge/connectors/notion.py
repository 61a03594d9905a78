"""The Notion connector: pages and database rows shared with an integration, as Markdown.

Built on the official `notion-client` (sync `Client`) at its default API version
(2025-09-03), where a database holds one or more *data sources* and rows are queried with
`POST /v1/data_sources/{id}/query` (the older `POST /v1/databases/{id}/query` fails once a
database has a second data source, and the SDK no longer wraps it).

Scope: every page the search endpoint lists, plus the rows of every data source it lists
(search can lag behind edits; a query cannot), optionally only those under `roots` (page or
database ids or URLs), decided by walking parents. A row's text starts with its properties
as "Name: value" lines. `poll` reads search sorted by `last_edited_time`, newest first, and
stops past `since`; archived or trashed pages become `Removed`. Requests are paced to
Notion's ~3 per second and retried through `Retry` (429 with Retry-After, 5xx).
"""
from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import httpx
from notion_client import Client
from notion_client.errors import HTTPResponseError, RequestTimeoutError
from notion_client.helpers import extract_notion_id

from knowledge.connectors.errors import ConfigurationError, ConnectorError, CredentialError
from knowledge.connectors.notion_blocks import BlockError, page_title, properties, to_markdown
from knowledge.connectors.retry import RETRIED, Retry, retry_after
from knowledge.documents import VISIBILITIES, Document, Failure, Removed
from knowledge.language import detect

DEFAULT_BASE_URL = "https://api.notion.com"
REVOKED = "Notion token revoked or invalid: reconnect the integration and update NOTION_TOKEN"
RESTRICTED = ("Notion refused access (restricted_resource): give the integration the "
              "'Read content' capability and share the pages with it")


class _Refused(ConnectorError):
    """Notion refused one request with 400/404/409: the object is gone, not shared with the
    integration, or not of the kind asked for. Callers decide what that means."""


@dataclass
class Pacer:
    """Spaces request starts at least `interval` seconds apart (Notion allows an average of
    about three requests per second per integration)."""

    interval: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    waited: list[float] = field(default_factory=list)  # every pause, for reports and tests
    _last: float | None = None

    def wait(self) -> None:
        if self._last is not None:
            pause = self._last + self.interval - self.clock()
            if pause > 0:
                self.waited.append(pause)
                self.sleep(pause)
        self._last = self.clock()


class NotionConnector:
    """Reads the Notion pages shared with an integration into documents of source `source`."""

    kind = "notion"
    POLL_MARGIN = 120.0  # seconds: Notion rounds last_edited_time down to the minute
    PAGE_SIZE = 100  # the API's maximum

    def __init__(self, source: str, *, token: str, base_url: str = DEFAULT_BASE_URL,
                 roots: list[str] | None = None, visibility: str = "public", retry: Retry | None = None,
                 min_interval: float = 0.34, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if visibility not in VISIBILITIES:
            raise ConfigurationError(f"visibility must be one of {', '.join(VISIBILITIES)}, not {visibility!r}")
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.roots = [_notion_id(root) for root in roots or []]
        self.visibility = visibility
        self.retry = retry or Retry(sleep=sleep)
        self.pacer = Pacer(min_interval, clock, sleep)
        # The SDK's own retries are off: they sleep with time.sleep (not injectable), retry
        # 5xx only for GET, and would multiply with ours.
        self.client = Client(auth=token, base_url=self.base_url, retry=False,
                             logger=logging.getLogger(f"{__name__}.sdk"))
        self._parents: dict[str, tuple[str, dict]] = {}  # id -> (kind, parent object), ids only
        self._in_roots: dict[str, bool] = {}

    def config(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "roots": list(self.roots), "visibility": self.visibility,
                "min_interval": self.pacer.interval}

    def close(self) -> None:
        self.client.close()

    # ---- the connector contract -----------------------------------------------------------------
    def load(self) -> Iterator[Document | Failure]:
        for page in self._pages():
            if not _gone(page):
                yield self._document(page)

    def poll(self, since: float) -> Iterator[Document | Failure | Removed]:
        self._forget()
        cutoff = since - self.POLL_MARGIN
        for page in self._search("page", newest_first=True):
            if _epoch(page["last_edited_time"]) < cutoff:
                return
            if self._in_scope("page", page):
                yield Removed(page["id"]) if _gone(page) else self._document(page)

    def slim(self) -> Iterator[str]:
        for page in self._pages():
            if not _gone(page):
                yield page["id"]

    # ---- scope ----------------------------------------------------------------------------------
    def _pages(self) -> Iterator[dict]:
        """Every page in scope once (archived ones included; callers skip them)."""
        self._forget()
        root_pages, root_sources = self._resolve_roots()
        seen: set[str] = set()
        searched = (p for p in self._search("page") if self._in_scope("page", p))
        for page in itertools.chain(root_pages, searched, self._rows(root_sources)):
            if page["id"] not in seen:
                seen.add(page["id"])
                yield page

    def _rows(self, root_sources: list[str]) -> Iterator[dict]:
        sources = {s: None for s in root_sources}
        sources.update({s["id"]: None for s in self._search("data_source") if self._in_scope("data_source", s)})
        for source_id in sources:
            for row in self._paginate(f"query data source {source_id}", lambda cursor: self.client.data_sources.query(
                    data_source_id=source_id, page_size=self.PAGE_SIZE, start_cursor=cursor)):
                if row.get("object") == "page":  # a wiki's data source also lists data sources
                    yield row

    def _resolve_roots(self) -> tuple[list[dict], list[str]]:
        """The root pages, and the data sources of root databases; a root the integration
        can't see is a configuration error."""
        pages, sources = [], []
        for root in self.roots:
            try:
                pages.append(self._api(f"retrieve page {root}", lambda: self.client.pages.retrieve(page_id=root)))
                continue
            except _Refused:
                pass
            try:
                database = self._api(f"retrieve database {root}",
                                     lambda: self.client.databases.retrieve(database_id=root))
            except _Refused:
                raise ConfigurationError(f"Notion page or database {root} not found: share the page with the "
                                         "integration (••• → Connections) or fix the id") from None
            sources += [s["id"] for s in database.get("data_sources") or []]
        return pages, sources

    def _in_scope(self, kind: str, obj: dict) -> bool:
        """Whether `obj` is a root or lies under one, walking parents (each looked up once)."""
        if not self.roots:
            return True
        self._parents[obj["id"]] = (kind, obj.get("parent") or {})
        walked: list[str] = []
        node: tuple[str, str] | None = (kind, obj["id"])
        answer = False
        while node is not None and node[1] not in walked:  # Notion has no cycles; never loop anyway
            if node[1] in self._in_roots or node[1] in self.roots:
                answer = self._in_roots.get(node[1], True)
                break
            walked.append(node[1])
            node = self._parent(*node)
        self._in_roots.update(dict.fromkeys(walked, answer))
        return answer

    def _parent(self, kind: str, object_id: str) -> tuple[str, str] | None:
        if object_id not in self._parents:
            fetch = {"page": self.client.pages.retrieve, "database": self.client.databases.retrieve,
                     "data_source": self.client.data_sources.retrieve, "block": self.client.blocks.retrieve}[kind]
            try:
                found = self._api(f"retrieve {kind} {object_id}", lambda: fetch(object_id))
            except _Refused:  # an ancestor not shared with the integration: outside every root
                return None
            self._parents[object_id] = (kind, found.get("parent") or {})
        parent = self._parents[object_id][1]
        for key in ("database_id", "page_id", "block_id", "data_source_id"):  # a row's names its database
            if parent.get(key):
                return key.removesuffix("_id"), parent[key]
        return None  # the workspace

    def _forget(self) -> None:
        """Pages move: scope answers are good for one pass only."""
        self._parents.clear()
        self._in_roots.clear()

    # ---- documents ------------------------------------------------------------------------------
    def _document(self, page: dict) -> Document | Failure:
        page_id = page["id"]
        try:
            title = page_title(page)
            props = properties(page) if _is_row(page) else {}
            body = to_markdown(self._children(page_id), self._children)
        except (BlockError, KeyError, TypeError, AttributeError) as exc:
            return Failure(page_id, f"Notion page {page_id}: cannot convert: {exc}")
        except _Refused as exc:
            return Failure(page_id, f"Notion page {page_id}: {exc}")
        lines = "\n".join(f"{name}: {value}" for name, value in props.items())
        text = "\n\n".join(p for p in (lines, body) if p) or title
        return Document(id=page_id, source=self.source, title=title, text=text, url=page.get("url") or "",
                        updated_at=page.get("last_edited_time"), language=detect(text)[0] or "en",
                        visibility=self.visibility, metadata=_metadata(page, props))

    def _children(self, block_id: str) -> Iterator[dict]:
        return self._paginate(f"list children of {block_id}", lambda cursor: self.client.blocks.children.list(
            block_id=block_id, page_size=self.PAGE_SIZE, start_cursor=cursor))

    # ---- API calls ------------------------------------------------------------------------------
    def _search(self, kind: str, newest_first: bool = False) -> Iterator[dict]:
        body: dict[str, Any] = {"filter": {"property": "object", "value": kind}, "page_size": self.PAGE_SIZE}
        if newest_first:
            body["sort"] = {"timestamp": "last_edited_time", "direction": "descending"}
        return self._paginate(f"search {kind}s", lambda cursor: self.client.search(**body, start_cursor=cursor))

    def _paginate(self, what: str, fetch: Callable[[str | None], dict]) -> Iterator[dict]:
        cursor = None
        while True:
            answer = self._api(what, lambda: fetch(cursor))
            yield from answer["results"]
            cursor = answer.get("next_cursor")
            if not answer.get("has_more") or not cursor:
                return

    def _api(self, what: str, call: Callable[[], Any]) -> Any:
        """One API call, paced and retried; errors become the connector's typed errors."""
        def attempt() -> Any:
            self.pacer.wait()
            return call()

        try:
            return self.retry.call(attempt, _status_of, f"Notion {what}")
        except HTTPResponseError as exc:
            raise _error(exc, what) from exc
        except (httpx.TransportError, RequestTimeoutError) as exc:
            raise ConnectorError(f"Notion API unreachable ({what}): {type(exc).__name__}; try again later") from exc


def _status_of(exc: BaseException) -> tuple[int | None, float | None]:
    # notion-client 3.x keeps the httpx response headers on HTTPResponseError (and its
    # APIResponseError subclass), so Retry-After is read from there directly.
    if isinstance(exc, HTTPResponseError):
        return exc.status, retry_after(exc.headers.get("retry-after"))
    if isinstance(exc, (httpx.TransportError, RequestTimeoutError)):
        return 0, None
    return None, None


def _error(exc: HTTPResponseError, what: str) -> ConnectorError:
    code = getattr(exc.code, "value", exc.code)
    if exc.status == 401:
        return CredentialError(REVOKED)
    if exc.status == 403:
        return CredentialError(RESTRICTED)
    if exc.status in RETRIED:
        return ConnectorError(f"Notion API unavailable ({what}: HTTP {exc.status} {code}); try again later")
    return _Refused(f"Notion refused {what}: HTTP {exc.status} {code}: {exc}")


def _notion_id(root: str) -> str:
    found = extract_notion_id(root)
    if not found:
        raise ConfigurationError(f"not a Notion page or database id or URL: {root!r}")
    return found


def _gone(page: dict) -> bool:
    return bool(page.get("archived") or page.get("in_trash"))


def _is_row(page: dict) -> bool:
    return (page.get("parent") or {}).get("type") in ("data_source_id", "database_id")


def _epoch(timestamp: str) -> float:
    return dt.datetime.fromisoformat(timestamp).timestamp()


def _metadata(page: dict, props: dict[str, str]) -> dict[str, Any]:
    parent = page.get("parent") or {}
    meta: dict[str, Any] = {"created_by": (page.get("created_by") or {}).get("id"),
                            "last_edited_by": (page.get("last_edited_by") or {}).get("id"),
                            "created_time": page.get("created_time"), "parent": parent}
    if _is_row(page):
        meta.update(database_id=parent.get("database_id"), data_source_id=parent.get("data_source_id"),
                    properties=props)
    return meta
