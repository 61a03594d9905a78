"""Readers: turn one local file into documents (Markdown, HTML, text, PDF, a Q&A form,
a product catalog).

Markdown keeps its headings; HTML headings and list items become Markdown ones; PDFs
become one section per page. YAML front matter in Markdown sets title, url, language,
visibility and updated_at. A file that can't be read raises `ReadError` with a reason a
person can act on; the caller records it and goes on with the other files.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from knowledge import sanitize
from knowledge.documents import VISIBILITIES, Document
from knowledge.language import detect

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".text", ".html", ".htm", ".pdf"}
FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
MAX_FILE_BYTES = 50 * 1024 * 1024


class ReadError(Exception):
    """Raised when a file is not readable as knowledge (binary, corrupt, malformed)."""


def read_file(path: Path, root: Path, source: str) -> list[Document]:
    """All documents in `path`; ids are paths relative to `root` without the suffix."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ReadError(f"larger than {MAX_FILE_BYTES // 2**20} MiB")
    doc_id = path.relative_to(root).with_suffix("").as_posix() if path != root else path.stem
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return read_qa_form(path, source, doc_id)
    if suffix == ".csv":
        return read_catalog(path, source, doc_id)
    if suffix == ".pdf":
        return [_document(source, doc_id, path, pdf_text(path), {})]
    raw = decode_text(path.read_bytes())
    meta: dict[str, Any] = {}
    if suffix in (".md", ".markdown"):
        raw, meta = _front_matter(raw)
    elif suffix in (".html", ".htm"):
        raw, meta = _html_to_markdown(raw)
    return [_document(source, doc_id, path, raw, meta)]


def decode_text(data: bytes) -> str:
    """UTF-8 text (a BOM is dropped); ReadError for binary or undecodable data."""
    if b"\x00" in data[:8192]:
        raise ReadError("binary file (not text)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReadError(f"not valid UTF-8 text (byte {exc.start})") from exc


def _front_matter(text: str) -> tuple[str, dict[str, Any]]:
    match = FRONT_MATTER.match(text)
    if not match:
        return text, {}
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise ReadError(f"malformed front matter: {exc}") from exc
    if not isinstance(meta, dict):
        raise ReadError("front matter must be a mapping of keys to values")
    return text[match.end():], meta


def _document(source: str, doc_id: str, path: Path, text: str, meta: dict[str, Any]) -> Document:
    text = text.strip()
    if not text:
        raise ReadError("no text in file")
    title = str(meta.get("title") or _first_heading(text) or path.stem.replace("-", " ").replace("_", " "))
    visibility = str(meta.get("visibility", "public"))
    if visibility not in VISIBILITIES:
        raise ReadError(f"visibility must be one of {', '.join(VISIBILITIES)}, not {visibility!r}")
    updated = meta.get("updated_at") or dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).date()
    return Document(id=doc_id, source=source, title=title, text=text, url=str(meta.get("url") or path),
                    updated_at=str(updated), language=str(meta.get("language") or detect(text)[0] or "en"),
                    visibility=visibility, metadata={"path": str(path)})


def _first_heading(text: str) -> str:
    match = re.search(r"^#\s+(.+)$", text, re.M)
    return match.group(1).strip() if match else ""


def pdf_text(path: Path | BinaryIO) -> str:
    """The text of a PDF file or stream, page by page (ReadError when it has none)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise ReadError(f"corrupt or unreadable PDF: {exc}") from exc
    return "\n\n".join(f"## Page {i}\n\n{text.strip()}" for i, text in enumerate(pages, 1) if text.strip())


class _HtmlToMarkdown(HTMLParser):
    SKIP = {"script", "style", "nav", "footer", "head", "noscript"}
    BLOCK = {"p", "div", "section", "article", "br", "tr", "table", "ul", "ol", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0
        self.title = ""
        self._in_title = False
        self.hiding = sanitize.Hiding()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.hiding.start(tag, attrs):  # display:none, white text…: kept marked, for sanitize.clean
            return
        if tag == "title":
            self._in_title = True
        if tag in self.SKIP:
            self.skipping += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.out.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in ("td", "th"):
            self.out.append(" | ")
        elif tag in self.BLOCK:
            self.out.append("\n\n" if tag != "br" else "\n")

    def handle_endtag(self, tag: str) -> None:
        hidden = self.hiding.end(tag)
        if hidden is not None:
            self.out.append(hidden)
            return
        if tag == "title":
            self._in_title = False
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        elif re.fullmatch(r"h[1-6]", tag) or tag in self.BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if self.hiding.data(data):
            return
        if self._in_title:
            self.title += data
        elif not self.skipping:
            self.out.append(re.sub(r"\s+", " ", data))


def _html_to_markdown(html: str) -> tuple[str, dict[str, Any]]:
    parser = _HtmlToMarkdown()
    parser.feed(html)
    parser.close()
    text = re.sub(r"\n[ \t]+", "\n", "".join(parser.out))
    return re.sub(r"\n{3,}", "\n\n", text), ({"title": parser.title.strip()} if parser.title.strip() else {})


def read_qa_form(path: Path, source: str, doc_id: str) -> list[Document]:
    """A Q&A form (see knowledge/sample/qa_form.yaml): one document per answer and language."""
    try:
        form = yaml.safe_load(decode_text(path.read_bytes()))
    except yaml.YAMLError as exc:
        raise ReadError(f"malformed YAML: {exc}") from exc
    if not isinstance(form, dict) or not isinstance(form.get("answers"), list):
        raise ReadError("a Q&A form needs an 'answers' list of {key, question, answer}")
    documents = []
    for n, entry in enumerate(form["answers"]):
        if not isinstance(entry, dict) or "question" not in entry or "answer" not in entry:
            raise ReadError(f"answer #{n + 1} needs 'question' and 'answer'")
        key = str(entry.get("key") or n)
        questions, answers = _by_language(entry["question"]), _by_language(entry["answer"])
        for language, answer in answers.items():
            question = questions.get(language) or next(iter(questions.values()))
            documents.append(Document(
                id=f"{doc_id}#{key}" + (f"@{language}" if len(answers) > 1 else ""), source=source,
                title=question, text=f"# {question}\n\n{answer}", url=str(form.get("url") or path),
                updated_at=str(form.get("updated_at") or ""), language=language or detect(answer)[0],
                visibility=str(entry.get("visibility", "public")), metadata={"path": str(path), "key": key}))
    return documents


def _by_language(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return {"": str(value)}


OFFER_PRICE, OFFER_AVAILABILITY = "Price: ", "Availability: "


def is_offer(text: str) -> bool:
    """Is this passage a product sheet written by `read_catalog` (its price and stock lines)?"""
    head = text.lstrip().split("\n", 3)
    return any(line.startswith(OFFER_PRICE) for line in head[:3]) and OFFER_AVAILABILITY in text[:400]


def read_catalog(path: Path, source: str, doc_id: str) -> list[Document]:
    """A product catalog CSV (id,name,price,currency,stock,description,url): one document per offer."""
    rows = list(csv.DictReader(io.StringIO(decode_text(path.read_bytes()))))
    missing = {"id", "name", "price"} - set(rows[0] if rows else {})
    if missing:
        raise ReadError(f"a catalog CSV needs the columns id, name, price (missing: {', '.join(sorted(missing))})")
    documents = []
    for row in rows:
        stock = row.get("stock", "")
        availability = "out of stock" if stock.strip() in ("0", "") else f"in stock ({stock} available)"
        text = (f"# {row['name']}\n\n{OFFER_PRICE}{row['price']} {row.get('currency', '')}\n"
                f"{OFFER_AVAILABILITY}{availability}\n\n{row.get('description', '')}")
        documents.append(Document(
            id=f"{doc_id}#{row['id']}", source=source, title=row["name"], text=text,
            url=row.get("url") or str(path), language="en", metadata={"path": str(path), "offer": dict(row)}))
    return documents
