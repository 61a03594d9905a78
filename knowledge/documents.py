"""The document model: what every reader and connector produces and the index stores.

A `Document` is one page, article, Q&A entry or product, with the text keeping its
headings as Markdown `#` lines so chunking can follow the structure. `visibility` is
`public` (may be quoted in public places) or `internal` (only in private conversations).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping

VISIBILITIES = ("public", "internal")


@dataclass(frozen=True)
class Document:
    """One unit of knowledge from a source, with a stable `id` unique within its source."""

    id: str
    source: str
    title: str
    text: str
    url: str = ""
    updated_at: str | None = None
    language: str = ""
    visibility: str = "public"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A hash of everything that changes what the index stores for this document."""
        parts = (self.title, self.text, self.url, self.updated_at or "", self.language, self.visibility)
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Chunk:
    """A retrievable passage of a document: one section, or part of a long one."""

    id: str  # f"{document_id}#{ordinal}": stable while the document's structure is
    document_id: str
    source: str
    ordinal: int
    heading: str  # the heading path, e.g. "Delivery › Belgium"
    text: str

    def embedding_text(self, title: str) -> str:
        """What is embedded: the title and heading path give a short passage its context."""
        head = " › ".join(p for p in (title, self.heading) if p)
        return f"{head}\n{self.text}" if head else self.text

    def content_hash(self, title: str) -> str:
        """Identifies identical passages so unchanged text is never embedded twice."""
        return hashlib.sha256(self.embedding_text(title).encode()).hexdigest()


@dataclass(frozen=True)
class Failure:
    """A document that could not be read, returned as a value so a batch can go on."""

    document_id: str
    error: str


@dataclass(frozen=True)
class Removed:
    """A document the source deleted, archived, trashed or moved out of scope, as a poll
    reports it (a full pass prunes by absence instead)."""

    document_id: str
