"""Heading-aware chunking with bounded size and stable ids.

A document's Markdown headings split it into sections; each section keeps its heading
path. Sections longer than `max_chars` are cut at paragraph, then sentence, then word
boundaries; tiny neighbouring sections under one parent are merged so that no chunk is a
bare heading. Ids are `document_id#ordinal`, so re-chunking an unchanged document gives the
same ids and the same content hashes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge.documents import Chunk, Document

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")
MAX_CHARS = 1200
MIN_CHARS = 200


@dataclass
class _Section:
    path: tuple[str, ...]
    lines: list[str]

    @property
    def body(self) -> str:
        return "\n".join(self.lines).strip()


def _sections(text: str, title: str) -> list[_Section]:
    sections = [_Section((), [])]
    path: list[tuple[int, str]] = []
    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        match = None if in_code else HEADING.match(line)
        if not match:
            sections[-1].lines.append(line)
            continue
        level, name = len(match.group(1)), match.group(2).strip()
        path = [(lvl, n) for lvl, n in path if lvl < level] + [(level, name)]
        names = tuple(n for _, n in path if n != title)
        sections.append(_Section(names, []))
    return [s for s in sections if s.body]


def _split_long(text: str, max_chars: int) -> list[str]:
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    for unit in _units(text, max_chars):
        if pieces and len(pieces[-1]) + len(unit) + 1 <= max_chars:
            pieces[-1] = f"{pieces[-1]}\n{unit}"
        else:
            pieces.append(unit)
    return [p.strip() for p in pieces if p.strip()]


def _units(text: str, max_chars: int) -> list[str]:
    """Paragraphs, or sentences of a long paragraph, or words of a long sentence."""
    units: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        if len(para) <= max_chars:
            units.append(para)
            continue
        for sentence in SENTENCE_END.split(para):
            units.extend(_hard_split(sentence, max_chars) if len(sentence) > max_chars else [sentence])
    return [u for u in units if u.strip()]


def _hard_split(text: str, max_chars: int) -> list[str]:
    out, current = [], ""
    for word in re.findall(r"\S+\s*", text) if " " in text else [text[i:i + max_chars] for i in range(0, len(text), max_chars)]:
        if current and len(current) + len(word) > max_chars:
            out.append(current)
            current = ""
        current += word
    return out + ([current] if current else [])


def _merge_small(sections: list[_Section], max_chars: int) -> list[_Section]:
    merged: list[_Section] = []
    for section in sections:
        prev = merged[-1] if merged else None
        if prev and len(prev.body) < MIN_CHARS and prev.path[:1] == section.path[:1] \
                and len(prev.body) + len(section.body) < max_chars:
            heading = f"{'#' * (len(section.path) + 1)} {section.path[-1]}" if section.path else ""
            prev.lines.extend(["", heading, *section.lines] if heading else section.lines)
            continue
        merged.append(section)
    return merged


def chunk_document(document: Document, max_chars: int = MAX_CHARS) -> list[Chunk]:
    """Split a document into chunks that each fit `max_chars` (plus their heading)."""
    chunks: list[Chunk] = []
    for section in _merge_small(_sections(document.text, document.title), max_chars):
        for piece in _split_long(section.body, max_chars):
            ordinal = len(chunks)
            chunks.append(Chunk(
                id=f"{document.id}#{ordinal}", document_id=document.id, source=document.source,
                ordinal=ordinal, heading=" › ".join(section.path), text=piece,
            ))
    return chunks
