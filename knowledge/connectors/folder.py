"""The local folder connector: Markdown, HTML, text and PDF files, Q&A forms (YAML) and
product catalogs (CSV) under one path, or that one file.

Hidden files and folders are skipped. Files of other types are ignored, not failures.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from knowledge.documents import Document, Failure
from knowledge.readers import TEXT_SUFFIXES, ReadError, read_file

SUFFIXES = TEXT_SUFFIXES | {".yaml", ".yml", ".csv"}


class FolderConnector:
    """Reads the knowledge files under `path` into documents of source `source`."""

    kind = "folder"

    def __init__(self, path: str | Path, source: str):
        self.path = Path(path).expanduser().resolve()
        self.source = source

    def config(self) -> dict[str, str]:
        return {"path": str(self.path)}

    def files(self) -> list[Path]:
        if not self.path.exists():
            raise FileNotFoundError(f"no such file or folder: {self.path}")
        if self.path.is_file():
            return [self.path]
        return sorted(p for p in self.path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                      and not any(part.startswith(".") for part in p.relative_to(self.path).parts))

    def load(self) -> Iterator[Document | Failure]:
        root = self.path if self.path.is_dir() else self.path.parent
        for file in self.files():
            try:
                yield from read_file(file, root, self.source)
            except (ReadError, OSError) as exc:
                relative = file.relative_to(root)
                yield Failure(relative.with_suffix("").as_posix(), f"{relative.as_posix()}: {exc}")

    def slim(self) -> Iterator[str]:
        for item in self.load():
            yield item.id if isinstance(item, Document) else item.document_id
