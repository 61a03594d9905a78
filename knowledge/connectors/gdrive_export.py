"""One Google Drive file as a `Document`: what the Drive connector reads of each file.

Google Docs are exported as Markdown (Drive has offered `text/markdown` export since 2024),
so headings, lists and tables arrive as `#` lines, `-` items and pipe tables; images inlined
as data URIs are dropped. Where Drive refuses Markdown export (HTTP 400), Docs are exported
as HTML and converted here, keeping the same structure. PDFs and text, Markdown and HTML
files are downloaded; PDFs go through the same pypdf reading as local files. Sharing sets
the visibility: a file anyone, or the company's domain, may open is `public`, one shared
only with people or groups is `internal`, and so is one whose sharing we may not read
(Drive shows it only to those allowed to share the file). A file that can't be read becomes a `Failure`.
"""
from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from typing import Any, Callable, Iterator, Protocol

from knowledge import sanitize
from knowledge.connectors.errors import ConnectorError, CredentialError
from knowledge.documents import Document, Failure
from knowledge.language import detect
from knowledge.readers import MAX_FILE_BYTES, ReadError, decode_text, pdf_text

FOLDER = "application/vnd.google-apps.folder"
GOOGLE_DOC = "application/vnd.google-apps.document"
PDF = "application/pdf"
TEXT_TYPES = ("text/plain", "text/markdown", "text/x-markdown", "text/html")
READABLE = (GOOGLE_DOC, PDF, *TEXT_TYPES)
# What a full pass asks of each file (owners and permissions are absent for shared-drive items).
FILE_FIELDS = ("id,name,mimeType,parents,modifiedTime,webViewLink,trashed,size,driveId,"
               "owners(displayName,emailAddress),permissions(type,role,domain,allowFileDiscovery)")
PERMISSION_FIELDS = "nextPageToken,permissions(type,role,domain,allowFileDiscovery)"

_DATA_IMAGE_REF = re.compile(r"^\[[^\]]+\]:\s*<?data:image/[^\n]*$", re.M)
_IMAGE = re.compile(r"!\[[^\]]*\](?:\[[^\]]*\]|\(data:[^)]*\))")


class DriveError(ConnectorError):
    """A Drive call answered an HTTP error that is neither a credential problem nor a
    transient one (a file not found, a conversion refused, an export too large)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Drive(Protocol):
    """What reading a file needs of the connector: the API's resources and its retried calls."""

    files: Any
    permissions: Any

    def call(self, request: Any, what: str) -> Any: ...

    def pages(self, method: Callable[..., Any], what: str, **params: Any) -> Iterator[dict]: ...


def visibility(permissions: list[dict], domain: str = "") -> str:
    """`public` if anyone, or the domain (`domain` when set, else any), may open the file."""
    for permission in permissions:
        kind = permission.get("type")
        if kind == "anyone" or (kind == "domain" and (
                not domain or permission.get("domain", "").lower() == domain.lower())):
            return "public"
    return "internal"


class Exporter:
    """Reads Drive files of source `source` into documents."""

    def __init__(self, drive: Drive, source: str, domain: str = ""):
        self.drive, self.source, self.domain = drive, source, domain
        self.markdown = True  # False once Drive refuses Markdown export: HTML from then on

    def document(self, file: dict) -> Document | Failure:
        """The document for `file` (a Drive file resource with FILE_FIELDS), or a Failure."""
        name = file.get("name") or file["id"]
        try:
            text = self._text(file).strip()
            if not text:
                raise ReadError("no text in file")
            shared = self._permissions(file)
        except CredentialError:
            raise
        except (ConnectorError, ReadError) as exc:
            return Failure(file["id"], f"{name}: {exc}")
        return Document(
            id=file["id"], source=self.source, title=name, text=text, url=file.get("webViewLink", ""),
            updated_at=file.get("modifiedTime"), language=detect(text)[0] or "en",
            visibility=visibility(shared, self.domain),
            metadata={"owners": [o.get("displayName") or o.get("emailAddress", "") for o in file.get("owners", [])],
                      "mimeType": file["mimeType"], "parents": list(file.get("parents", []))})

    def _text(self, file: dict) -> str:
        mime = file["mimeType"]
        if mime == GOOGLE_DOC:
            return self._export(file)
        if int(file.get("size") or 0) > MAX_FILE_BYTES:
            raise ReadError(f"larger than {MAX_FILE_BYTES // 2**20} MiB")
        request = self.drive.files.get_media(fileId=file["id"], supportsAllDrives=True)
        data = self.drive.call(request, f"downloading {file['name']}")
        if mime == PDF:
            return pdf_text(io.BytesIO(data))
        text = decode_text(data)
        return html_to_markdown(text) if mime == "text/html" else text

    def _export(self, file: dict) -> str:
        what = f"exporting {file['name']}"
        if self.markdown:
            request = self.drive.files.export(fileId=file["id"], mimeType="text/markdown")
            try:
                return clean_markdown(self.drive.call(request, what).decode("utf-8", "replace"))
            except DriveError as exc:
                if exc.status != 400:
                    raise
                self.markdown = False
        request = self.drive.files.export(fileId=file["id"], mimeType="text/html")
        return html_to_markdown(self.drive.call(request, what).decode("utf-8", "replace"))

    def _permissions(self, file: dict) -> list[dict]:
        if "permissions" in file:
            return file["permissions"]
        # Drive lists permissions only to those who may share the file, and never for
        # shared-drive items: ask for them; if even that is refused, the file stays internal.
        pages = self.drive.pages(self.drive.permissions.list, f"reading the sharing of {file['name']}",
                                 fileId=file["id"], supportsAllDrives=True, fields=PERMISSION_FIELDS)
        try:
            return [p for page in pages for p in page.get("permissions", [])]
        except DriveError as exc:
            if exc.status not in (403, 404):
                raise
            return []


def clean_markdown(text: str) -> str:
    """Docs' Markdown export without the images it inlines as base64 data URIs."""
    text = _DATA_IMAGE_REF.sub("", _IMAGE.sub("", text))
    return re.sub(r"\n{3,}", "\n\n", text.replace("\r\n", "\n"))


class _DocsHtml(HTMLParser):
    """Google Docs' HTML export (also plain HTML) to Markdown: headings, lists, tables."""

    SKIP = {"head", "style", "script", "noscript"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0
        self.lists: list[list[Any]] = []  # [tag, items so far, level or None] per open list
        self.rows: list[list[str]] | None = None  # the table being read
        self.cell: list[str] | None = None
        self.hiding = sanitize.Hiding()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.hiding.start(tag, attrs):  # display:none, white text…: kept marked, for sanitize.clean
            return
        if tag in self.SKIP:
            self.skipping += 1
        elif tag == "table" and self.rows is None:
            self.rows = []
        elif self.rows is not None:
            self._table_tag(tag)
        elif re.fullmatch(r"h[1-6]", tag):
            self._emit("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in ("ul", "ol"):
            self._list(tag, dict(attrs))
        elif tag == "li":
            self._item()
        elif tag == "p" and not self.lists:
            title = "title" in (dict(attrs).get("class") or "").split()
            self._emit("\n\n# " if title else "\n\n")
        elif tag == "br":
            self._emit("\n")

    def _table_tag(self, tag: str) -> None:
        assert self.rows is not None
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []
        elif self.cell is not None and tag in ("p", "br", "li"):
            self.cell.append(" ")

    def _list(self, tag: str, attrs: dict[str, str | None]) -> None:
        # Docs writes nested items as sibling lists whose class ends in the level: lst-kix_…-1
        level = re.search(r"lst-kix_\w+-(\d+)", attrs.get("class") or "")
        start = attrs.get("start") or "1"
        self.lists.append([tag, int(start) - 1 if start.isdigit() else 0, int(level.group(1)) if level else None])

    def _item(self) -> None:
        if not self.lists:
            self.lists.append(["ul", 0, None])
        tag, count, level = self.lists[-1]
        self.lists[-1][1] = count + 1
        depth = level if level is not None else len(self.lists) - 1
        newline = "" if self.out and self.out[-1].endswith("\n") else "\n"
        self._emit(newline + "  " * depth + (f"{count + 1}." if tag == "ol" else "-") + " ")

    def handle_endtag(self, tag: str) -> None:
        hidden = self.hiding.end(tag)
        if hidden is not None:
            if self.cell is not None:
                self.cell.append(hidden)
            else:
                self._emit(hidden)
            return
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif self.rows is not None:
            if tag in ("td", "th") and self.cell is not None and self.rows:
                self.rows[-1].append(re.sub(r"\s+", " ", "".join(self.cell)).strip().replace("|", "\\|"))
                self.cell = None
            elif tag == "table":
                self._emit(_table(self.rows))
                self.rows = None
        elif re.fullmatch(r"h[1-6]", tag) or (tag == "p" and not self.lists):
            self._emit("\n\n")
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
            self._emit("\n")

    def handle_data(self, data: str) -> None:
        if self.hiding.data(data) or self.skipping:
            return
        text = re.sub(r"\s+", " ", data)
        if self.cell is not None:
            self.cell.append(text)
        elif self.rows is None:
            self._emit(text.lstrip() if not self.out or self.out[-1][-1:].isspace() else text)

    def _emit(self, text: str) -> None:
        if text:
            self.out.append(text)


def _table(rows: list[list[str]]) -> str:
    rows = [r for r in rows if any(r)]
    width = max((len(r) for r in rows), default=0)
    if width <= 1:  # Docs uses one-cell tables for callouts and code: plain paragraphs
        return "".join(f"\n\n{r[0]}\n\n" for r in rows if r)
    lines = ["| " + " | ".join(r + [""] * (width - len(r))) + " |" for r in rows]
    lines.insert(1, "|" + " --- |" * width)
    return "\n\n" + "\n".join(lines) + "\n\n"


def html_to_markdown(html: str) -> str:
    """Markdown for `html`, keeping headings as `#` lines, list nesting and tables."""
    parser = _DocsHtml()
    parser.feed(html)
    parser.close()
    lines = [line.rstrip() for line in "".join(parser.out).split("\n")]
    kept = [line for line in lines if not re.fullmatch(r"\s*(#+|-|\d+\.)", line)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
