"""Ingestion: put a connector's documents into the index, cheaply and safely.

Unchanged documents (same fingerprint) cost nothing. Changed ones are re-chunked; a chunk
whose text was embedded before reuses that vector, so only new text is embedded.
Embedding is batched across documents, and the connector reads the next documents in a thread
while a batch is embedded (knowledge/prefetch.py). After a complete pass, documents the source no
longer has are removed; a document that failed to read keeps its previous version, so a
bad file never deletes knowledge. The source's status tells how it went.

Three passes, after Onyx's capabilities: `ingest` (load: every document; what the source
no longer has is removed), `update` (poll: only what changed since a time, and the
deletions the API reports) and `prune` (slim: ids only; documents the source no longer
lists are removed, which is how deletions the poll can't see disappear). A connector's
error leaves the index as it was and puts the source in `failed` with the error's words.

Every document passes through `sanitize.clean` before chunking, whatever its connector: hidden
content and instructions to an AI never become knowledge, and a document where an instruction
was found is indexed clean and put in quarantine for review (`Index.flagged`). The index keeps
which rules cleaned each document (its fingerprint ends in `@<sanitize.RULES>`, its metadata
says `sanitized`: the rules and what was stripped), so when the rules change an unchanged
document is not skipped but cleaned again (`Report.rechecked`); its vectors are reused when its
clean text is the same. A poll only sees what changed upstream, so `update` runs a complete
pass instead while any document of the source was cleaned under other rules (`outdated`).
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Iterable, Iterator, Protocol

import numpy as np

from knowledge import lexical, sanitize
from knowledge.chunking import chunk_document
from knowledge.connectors.errors import ConnectorError
from knowledge.documents import Chunk, Document, Failure, Removed
from knowledge.embeddings import Embedder
from knowledge.index import title_hash
from knowledge.indexes import KnowledgeIndex
from knowledge.prefetch import prefetched

BATCH_CHUNKS = 64


class Connector(Protocol):
    """What ingestion needs of a connector (see knowledge/connectors/README.md)."""

    kind: str
    source: str

    def config(self) -> dict: ...

    def load(self) -> Iterable[Document | Failure]: ...


class Incremental(Connector, Protocol):
    """A connector that can also poll for changes and list its ids (the API connectors)."""

    def poll(self, since: float) -> Iterable[Document | Failure | Removed]: ...

    def slim(self) -> Iterable[str]: ...


@dataclass
class Report:
    """What one ingestion run did."""

    source: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    failures: list[Failure] = field(default_factory=list)
    full: bool = True  # a complete pass (False: only what changed)
    rechecked: int = 0  # unchanged documents cleaned again because the sanitizer's rules changed
    stripped: Counter = field(default_factory=Counter)  # hidden content and instructions removed, per kind
    flagged: dict[str, tuple[sanitize.Flag, ...]] = field(default_factory=dict)  # put in quarantine: id -> why

    @property
    def seen(self) -> int:
        return self.added + self.updated + self.unchanged


@dataclass(frozen=True)
class Checked(Document):
    """A document as the index stores it once cleaned: its fingerprint also names the rules that
    cleaned it (`<content hash>@<rules>`), so a document cleaned under other rules, or never,
    is not "unchanged" to a sanitizing ingest."""

    rules: str = ""

    def fingerprint(self) -> str:
        content = super().fingerprint()
        return f"{content}@{self.rules}" if self.rules else content


def rules_of(fingerprint: str) -> str:
    """The sanitizer rules a stored fingerprint says its document was cleaned with ("" for none)."""
    return fingerprint.partition("@")[2]


def outdated(index: KnowledgeIndex, source: str) -> int:
    """How many of the source's documents were cleaned under other rules than today's, or never."""
    return sum(rules_of(f) != sanitize.RULES for f in index.fingerprints(source).values())


# Called as each document (or failure) arrives, before it is processed.
Progress = Callable[[Report, "Document | Failure"], None]


class Ingestor:
    """Writes documents into an index (SQLite or PostgreSQL), embedding with an `Embedder`."""

    def __init__(self, index: KnowledgeIndex, embedder: Embedder, sanitizing: bool = True):
        self.index = index
        self.embedder = embedder
        self.sanitizing = sanitizing  # off only to measure what it prevents (bench/security.py)

    def ingest(self, connector: Connector, progress: Progress | None = None) -> Report:
        """A complete pass over the connector; the source's status is kept up to date."""
        source = connector.source
        report = Report(source)
        with self._tracked(connector, report):
            seen = self._run(connector.load(), report, progress)
            seen_or_failed = seen | {f.document_id for f in report.failures}
            report.removed = self.index.remove(source, self.index.document_ids(source) - seen_or_failed)
        return report

    def update(self, connector: Incremental, since: float, progress: Progress | None = None,
               checkpoint: str | None = None) -> Report:
        """Only what changed since `since` (epoch seconds): edits, additions, reported deletions.
        A connector with its own resume token (Drive's changes feed) gets `checkpoint` too."""
        if self.outdated(connector.source):  # the poll would skip them: a complete pass cleans them again
            return self.ingest(connector, progress)
        report = Report(connector.source, full=False)
        removed: list[str] = []

        def changes() -> Iterable[Document | Failure]:
            polled = connector.poll(since, checkpoint=checkpoint) if checkpoint else connector.poll(since)
            for item in polled:
                if isinstance(item, Removed):
                    removed.append(item.document_id)
                else:
                    yield item
        with self._tracked(connector, report):
            self._run(changes(), report, progress)
            report.removed = self.index.remove(connector.source, removed)
        return report

    @contextmanager
    def _tracked(self, connector: Connector, report: Report) -> Iterator[None]:
        """The source's status around one pass: processing, then success, or failed (re-raised)."""
        self.index.add_source(connector.source, connector.kind, connector.config())
        self.index.set_status(connector.source, "processing")
        try:
            yield
        except Exception as exc:
            self.mark_failed(connector.source, exc, report)
            raise
        self._succeeded(connector.source, report)

    def outdated(self, source: str) -> int:
        """How many of the source's documents were cleaned under other rules than today's (none
        when this ingestor doesn't sanitize): the next pass over them cleans them again."""
        return outdated(self.index, source) if self.sanitizing else 0

    def _rules(self) -> str:
        return sanitize.RULES if self.sanitizing else ""

    def prune(self, connector: Incremental) -> int:
        """Remove the documents the source no longer lists (ids only: no content is read)."""
        try:
            listed = set(connector.slim())
        except Exception as exc:
            self.mark_failed(connector.source, exc, Report(connector.source))
            raise
        return self.index.remove(connector.source, self.index.document_ids(connector.source) - listed)

    def mark_failed(self, source: str, exc: Exception, report: Report) -> None:
        # a connector's error is already worded for a person; anything else gets its type
        message = str(exc) if isinstance(exc, ConnectorError) else f"{type(exc).__name__}: {exc}"
        self.index.set_status(source, "failed", message[:500], len(report.failures), _named(report))

    def _succeeded(self, source: str, report: Report) -> None:
        error = f"{len(report.failures)} document(s) could not be read" if report.failures else None
        self.index.set_status(source, "success", error, len(report.failures), _named(report))

    def _run(self, items: Iterable[Document | Failure], report: Report, progress: Progress | None) -> set[str]:
        seen: set[str] = set()
        known = self.index.fingerprints(report.source)
        pending: list[tuple[Document, list[Chunk]]] = []
        for item in prefetched(items):  # the connector reads ahead while a batch is embedded
            if progress:
                progress(report, item)
            if isinstance(item, Failure):
                report.failures.append(item)
                continue
            seen.add(item.id)
            stored, checked = known.get(item.id), self._checked(item)
            if stored == checked.fingerprint():
                report.unchanged += 1
                continue
            if stored is not None and stored.partition("@")[0] == item.fingerprint():
                report.rechecked += 1  # same content, other rules
            else:
                report.added += stored is None
                report.updated += stored is not None
            pending.append(self._prepared(checked, report))
            if sum(len(c) for _, c in pending) >= BATCH_CHUNKS:
                self._flush(pending, report)
        self._flush(pending, report)
        return seen

    def _checked(self, document: Document) -> Checked:
        return Checked(**{f.name: getattr(document, f.name) for f in fields(Document)}, rules=self._rules())

    def _prepared(self, document: Checked, report: Report) -> tuple[Document, list[Chunk]]:
        """What the index stores of `document`, and its chunks, cut from the document as knowledge
        (see knowledge/sanitize.py); findings go in the report and what was stripped in its
        metadata. The stored document keeps the original's fingerprint (with the rules), so an
        unchanged document is still recognised next time."""
        if not self.sanitizing:
            return document, chunk_document(document)
        cleaned = sanitize.clean(document.text)
        report.stripped.update(cleaned.stripped)
        if cleaned.flags:
            report.flagged[document.id] = cleaned.flags
        sanitized = {"rules": document.rules, "stripped": dict(sorted(cleaned.stripped.items()))}
        return (replace(document, metadata={**document.metadata, "sanitized": sanitized}),
                chunk_document(replace(document, text=cleaned.text)))

    def _flush(self, pending: list[tuple[Document, list[Chunk]]], report: Report) -> None:
        if not pending:
            return
        model = self.embedder.name
        hashes = [[c.content_hash(d.title) for c in chunks] for d, chunks in pending]
        titles = {title_hash(d.title, model): d.title for d, _ in pending if d.title.strip()}
        cached = self.index.cached_vectors([*(h for hs in hashes for h in hs), *titles], model)
        todo = {h: c.embedding_text(d.title) for (d, chunks), hs in zip(pending, hashes)
                for c, h in zip(chunks, hs) if h not in cached}
        todo.update({h: t for h, t in titles.items() if h not in cached})
        fresh = dict(zip(todo, self.embedder.passages(list(todo.values())))) if todo else {}
        chunk_count = sum(len(hs) for hs in hashes)
        report.chunks_embedded += sum(1 for h in fresh if h not in titles)
        report.chunks_reused += chunk_count - sum(1 for h in fresh if h not in titles)
        vectors = {**cached, **fresh}
        items, terms = [], []
        for (document, chunks), hs in zip(pending, hashes):
            matrix = np.array([vectors[h] for h in hs], dtype=np.float32).reshape(len(hs), -1)
            items.append((document, chunks, hs, matrix, vectors.get(title_hash(document.title, model))))
            terms += [lexical.chunk_terms(document.title, c.heading, c.text, document.language or "en") for c in chunks]
        self.index.put(items, model, terms, [report.flagged.get(d.id, ()) for d, _ in pending])
        pending.clear()


def _named(report: Report) -> list[tuple[str, str]]:
    """The failed documents as (id, why), for the source's status."""
    return [(f.document_id, f.error) for f in report.failures]
