"""What the sanitizer stripped from each stored document, read back from the index.

At ingest (knowledge/ingest.py) every cleaned document's metadata gets `sanitized`: the
rules and, per kind (knowledge/sanitize.py: `html_comment`, `invisible`, `base64`…), how
many pieces were stripped. Both index backends select the documents whose metadata names
something stripped (`STRIPPED_LIKE`) and turn their rows into `Stripped` with `from_rows`;
`switchboard sources` counts them per source and `--stripped` lists them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable

STRIPPED_LIKE = '%"stripped": {"%'  # a LIKE pattern: metadata whose `stripped` is not empty (json.dumps' spacing)


@dataclass(frozen=True)
class Stripped:
    """A stored document the sanitizer stripped hidden content (or instructions) from."""

    source: str
    document_id: str
    title: str
    kinds: tuple[tuple[str, int], ...]  # (kind, how many pieces), by kind

    @property
    def total(self) -> int:
        return sum(n for _, n in self.kinds)


def from_rows(rows: Iterable[tuple[str, str, str, str]]) -> list[Stripped]:
    """(source, id, title, metadata JSON) rows -> the documents with something stripped."""
    found = []
    for source, document_id, title, metadata in rows:
        sanitized = json.loads(metadata).get("sanitized")
        counts = sanitized.get("stripped") if isinstance(sanitized, dict) else None
        kinds = tuple(sorted((str(k), int(n)) for k, n in (counts or {}).items() if int(n) > 0))
        if kinds:
            found.append(Stripped(source, document_id, title, kinds))
    return found
