"""The Confluence connector (Cloud and Data Center): the current pages of chosen spaces and,
if asked, their PDF and text attachments, read with atlassian-python-api's client.

Cloud signs in with an account's email and an API token (basic auth), Data Center with a
personal access token (Bearer). Pages arrive in storage format and leave as Markdown
(`confluence_storage`); a page with a read restriction, its own or an ancestor's, is
`internal`. Results are read one API page at a time, following `_links.next` until
Confluence gives none. `poll` asks CQL for pages modified since a time; CQL can't see
deleted pages, so pruning is `slim()`'s job (ids only, no bodies).

Every request goes through `Retry` (the client's own Retry-After sleeping is switched off,
so waits happen and are counted in one place). 401/403 raise `CredentialError`, an unknown
space `ConfigurationError`, anything else that outlasts the retries `ConnectorError`.
"""
from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urlsplit

import requests
from atlassian import Confluence

from knowledge.connectors.confluence_storage import StorageError, to_markdown
from knowledge.connectors.errors import ConfigurationError, ConnectorError, CredentialError
from knowledge.connectors.retry import Retry, retry_after
from knowledge.documents import Document, Failure
from knowledge.language import detect
from knowledge.readers import MAX_FILE_BYTES, TEXT_SUFFIXES, ReadError, read_file

RESTRICTIONS = ("restrictions.read.restrictions.user", "restrictions.read.restrictions.group")
PAGE_EXPAND = ",".join(["body.storage", "version", "space", "metadata.labels", "ancestors", *RESTRICTIONS,
                        *(f"ancestors.{r}" for r in RESTRICTIONS)])
PAGE_LIMIT = 50  # Confluence serves fewer pages per request when bodies are expanded
ID_LIMIT = 250
CLOCK_SKEW = 300  # seconds our clock and Confluence's may disagree by
# CQL reads dates to the minute in the account's time zone, which we don't know (it may be
# as far west as UTC-12): ask in UTC from 12 hours earlier, then keep pages by their exact
# modification time. Pages read twice cost nothing: ingestion compares fingerprints.
CQL_MARGIN = 12 * 3600 + 60 + CLOCK_SKEW
ID_BATCH = 50


class ConfluenceConnector:
    """The pages of `spaces` on the Confluence at `url` (Cloud: the site, with or without /wiki)."""

    kind = "confluence"

    def __init__(self, source: str, *, url: str, spaces: list[str], username: str = "", token: str,
                 cloud: bool = True, attachments: bool = False, retry: Retry | None = None):
        if not spaces:
            raise ConfigurationError("Confluence: name at least one space key to read")
        if cloud and not username:
            raise ConfigurationError("Confluence Cloud signs in with an account's email and API token: "
                                     "set the username to the account's email")
        self.source, self.url, self.spaces = source, url.rstrip("/"), list(spaces)
        self.username, self.cloud, self.attachments = username, cloud, attachments
        self.retry = retry or Retry()
        self._wiki = self.url.removesuffix("/wiki") + "/wiki" if cloud else self.url
        parts = urlsplit(self._wiki)
        self._origin, self._context = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
        auth = {"username": username, "password": token} if username else {"token": token}
        self._client = Confluence(url=self._wiki, cloud=cloud, retry_with_header=False, timeout=60, **auth)

    def config(self) -> dict[str, Any]:
        return {"url": self.url, "spaces": self.spaces, "cloud": self.cloud, "attachments": self.attachments}

    def load(self) -> Iterator[Document | Failure]:
        self._check_spaces()
        for key in self.spaces:
            params = {"spaceKey": key, "type": "page", "status": "current", "expand": PAGE_EXPAND, "limit": PAGE_LIMIT}
            for page, base in self._paged("/rest/api/content", params):
                yield from self._items(page, base)

    def poll(self, since: float) -> Iterator[Document | Failure]:
        """Pages modified at or after `since` (with their attachments, and pages whose
        attachments changed). Never a `Removed`: CQL can't see deleted pages."""
        self._check_spaces()
        seen: set[str] = set()
        for page, base in self._search(f"type=page and {_modified_since(since)}", PAGE_EXPAND, PAGE_LIMIT):
            if _at_or_after(page.get("version", {}).get("when"), since):
                seen.add(page["id"])
                yield from self._items(page, base)
        if self.attachments:
            containers = list(dict.fromkeys(
                a["container"]["id"] for a, _ in self._search(f"type=attachment and {_modified_since(since)}",
                                                              "version,container", ID_LIMIT)
                if _at_or_after(a.get("version", {}).get("when"), since)
                and a.get("container", {}).get("type") == "page" and a["container"]["id"] not in seen))
            for i in range(0, len(containers), ID_BATCH):
                ids = ",".join(containers[i:i + ID_BATCH])
                for page, base in self._search(f"type=page and id in ({ids})", PAGE_EXPAND, PAGE_LIMIT):
                    yield from self._items(page, base)

    def slim(self) -> Iterator[str]:
        self._check_spaces()
        for key in self.spaces:
            params = {"spaceKey": key, "type": "page", "status": "current", "limit": ID_LIMIT}
            for page, _ in self._paged("/rest/api/content", params):
                yield page["id"]
                if self.attachments:
                    yield from (f"att:{a['id']}" for a, _ in self._page_attachments(page["id"]) if _wanted(a))

    # --- documents ---------------------------------------------------------------------------

    def _items(self, page: dict, base: str) -> Iterator[Document | Failure]:
        visibility = "internal" if any(_restricted(c) for c in [page, *page.get("ancestors", [])]) else "public"
        yield self._page_document(page, base, visibility)
        if self.attachments:
            for attachment, attachment_base in self._page_attachments(page["id"], "version"):
                if _wanted(attachment):
                    yield self._attachment_document(attachment, attachment_base, page, visibility)

    def _page_document(self, page: dict, base: str, visibility: str) -> Document | Failure:
        try:
            text = to_markdown(page.get("body", {}).get("storage", {}).get("value", ""))
        except StorageError as exc:
            return Failure(page["id"], f"page {page.get('title', '')!r}: {exc}")
        text = text or page["title"]  # a page of macros only (children, toc) is still found by its title
        version = page.get("version", {})
        labels = page.get("metadata", {}).get("labels", {}).get("results", [])
        return Document(id=page["id"], source=self.source, title=page["title"], text=text,
                        url=base + page.get("_links", {}).get("webui", ""), updated_at=version.get("when"),
                        language=detect(text)[0] or "en", visibility=visibility,
                        metadata={"author": version.get("by", {}).get("displayName", ""),
                                  "labels": [label["name"] for label in labels],
                                  "space": page.get("space", {}).get("key", ""),
                                  "ancestors": [a.get("title", "") for a in page.get("ancestors", [])]})

    def _attachment_document(self, attachment: dict, base: str, page: dict, visibility: str) -> Document | Failure:
        doc_id, title = f"att:{attachment['id']}", attachment["title"]
        if (attachment.get("extensions", {}).get("fileSize") or 0) > MAX_FILE_BYTES:
            return Failure(doc_id, f"{title} (on {page['title']!r}): larger than {MAX_FILE_BYTES // 2**20} MiB")
        data = self._request(self._absolute(attachment["_links"]["download"]), None, f"download of {title}").content
        try:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / f"attachment{Path(title).suffix.lower()}"
                path.write_bytes(data)
                document = read_file(path, path.parent, self.source)[0]
        except (ReadError, OSError, IndexError) as exc:
            return Failure(doc_id, f"{title} (on {page['title']!r}): {exc or 'no text'}")
        links = attachment["_links"]
        return replace(document, id=doc_id, title=title, url=base + links.get("webui", links["download"]),
                       updated_at=attachment.get("version", {}).get("when"),
                       visibility="internal" if "internal" in (visibility, document.visibility) else "public",
                       metadata={"page": page["id"], "page_title": page["title"],
                                 "space": page.get("space", {}).get("key", ""),
                                 "media_type": attachment.get("extensions", {}).get("mediaType", "")})

    # --- requests ----------------------------------------------------------------------------

    def _check_spaces(self) -> None:
        for key in self.spaces:
            self._get(f"{self._wiki}/rest/api/space/{quote(key)}", None, f"space {key}",
                      missing=f"Confluence space {key!r} not found at {self.url}: check the key (it is "
                              "case-sensitive) and that the account can see the space")

    def _search(self, clause: str, expand: str, limit: int) -> Iterator[tuple[dict, str]]:
        spaces = ",".join('"' + key.replace('"', '\\"') + '"' for key in self.spaces)
        return self._paged("/rest/api/content/search", {"cql": f"space in ({spaces}) and {clause}",
                                                         "expand": expand, "limit": limit})

    def _page_attachments(self, page_id: str, expand: str = "") -> Iterator[tuple[dict, str]]:
        params = {"limit": ID_LIMIT, **({"expand": expand} if expand else {})}
        return self._paged(f"/rest/api/content/{page_id}/child/attachment", params)

    def _paged(self, path: str, params: dict) -> Iterator[tuple[dict, str]]:
        """Each result with the site's web base, one API page at a time, following `_links.next`."""
        url: str | None = self._wiki + path
        query: dict | None = params
        while url:
            body = self._get(url, query, path)
            links = body.get("_links", {})
            results = body.get("results") or []
            for item in results:
                yield item, (links.get("base") or self._wiki).rstrip("/")
            url, query = (self._absolute(links["next"]) if results and links.get("next") else None), None

    def _absolute(self, link: str) -> str:
        """A link Confluence gave (relative to its base, or absolute) on our own site: our
        credentials never go to another host."""
        parts = urlsplit(link)
        path = "/" + parts.path.lstrip("/")
        if self._context and not path.startswith(self._context + "/"):
            path = self._context + path
        return self._origin + path + (f"?{parts.query}" if parts.query else "")

    def _get(self, url: str, params: dict | None, what: str, missing: str = "") -> dict:
        response = self._request(url, params, what, missing)
        try:
            return response.json()
        except ValueError:
            raise ConnectorError(f"Confluence at {self.url} answered {what} with something other than JSON: "
                                 "is this the address of the Confluence site?") from None

    def _request(self, url: str, params: dict | None, what: str, missing: str = "") -> requests.Response:
        def fetch() -> requests.Response:
            response = self._client.get(url, params=params, absolute=True, advanced_mode=True)
            if response.status_code >= 400:
                raise requests.HTTPError(f"HTTP {response.status_code}", response=response)
            return response

        try:
            return self.retry.call(fetch, _status_of, what=f"Confluence {what}")
        except requests.HTTPError as exc:
            raise self._refusal(exc.response.status_code, what, missing) from exc
        except requests.RequestException as exc:
            raise ConnectorError(f"Confluence at {self.url} can't be reached ({type(exc).__name__}): "
                                 "check the URL and the network") from exc

    def _refusal(self, status: int, what: str, missing: str) -> ConnectorError:
        if status == 401:
            account = f" for {self.username}" if self.cloud else ""
            return CredentialError(f"Confluence rejected the API token for {self.url}: create a new token{account} "
                                   "and update CONFLUENCE_TOKEN")
        if status == 403:
            return CredentialError(f"Confluence refused access for {self.url} (HTTP 403): give the account behind "
                                   "CONFLUENCE_TOKEN access to the spaces, or use another account's token")
        if status == 404 and missing:
            return ConfigurationError(missing)
        if status == 429 or status >= 500:
            return ConnectorError(f"Confluence at {self.url} kept answering HTTP {status} to {what} "
                                  f"({self.retry.attempts} attempts): try again later")
        return ConnectorError(f"Confluence at {self.url} answered HTTP {status} to {what}")


def _status_of(exc: BaseException) -> tuple[int | None, float | None]:
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return exc.response.status_code, retry_after(exc.response.headers.get("Retry-After"))
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return 0, None
    return None, None


def _restricted(content: dict) -> bool:
    """Whether a read restriction limits who sees `content` (unknown counts as restricted)."""
    if "restrictions" not in content:
        return True
    found = content["restrictions"].get("read", {}).get("restrictions", {})
    return any(found.get(kind, {}).get("results") for kind in ("user", "group"))


def _wanted(attachment: dict) -> bool:
    return Path(attachment.get("title", "")).suffix.lower() in TEXT_SUFFIXES


def _modified_since(since: float) -> str:
    start = dt.datetime.fromtimestamp(since - CQL_MARGIN, dt.timezone.utc)
    return f'lastmodified >= "{start:%Y/%m/%d %H:%M}"'


def _at_or_after(when: str | None, since: float) -> bool:
    """Whether a Confluence time (ISO 8601) is at or after `since`, less the clock skew."""
    try:
        moment = dt.datetime.fromisoformat(when or "")
    except ValueError:
        return True  # unreadable: keep it, a needless re-read is free
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp() >= since - CLOCK_SKEW
