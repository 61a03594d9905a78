"""Documents cleaned under older sanitizer rules are cleaned again when an answering process starts.

The index stores which rules cleaned each document (knowledge/ingest.py: the fingerprint ends
in `@<sanitize.RULES>`). When a release adds a rule against a new injection trick, documents
indexed before it would otherwise keep whatever the old rules let through. So `switchboard
serve`, `chat` and `ask` call `recheck` on start: each folder source holding such documents
gets a complete sync at once (local files, no credentials; vectors are reused where the
clean text is unchanged, so it costs chunking, not embedding). API sources (Confluence,
Notion, Google Drive) are left to the worker, which syncs them as it starts (bot/worker.py
`plan`): that sync is a complete pass while they hold
such documents (`Ingestor.update`): a web process doesn't wait on a remote service to start.
`switchboard sources` says how many documents of each source wait for it (`outdated`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from knowledge.indexes import KnowledgeIndex
from knowledge.ingest import Progress, Report
from knowledge.ingest import outdated as documents_outdated
from knowledge.sync import Busy, Syncer

log = logging.getLogger(__name__)


def outdated(index: KnowledgeIndex) -> dict[str, int]:
    """Per source, how many of its documents were cleaned under other rules (sources with none left out)."""
    counts = {info.name: documents_outdated(index, info.name) for info in index.sources()}
    return {name: count for name, count in counts.items() if count}


def recheck(syncer: Syncer, announce: Callable[[str, int], Progress | None] | None = None) -> list[Report]:
    """A complete sync of every folder source holding documents cleaned under other rules.
    `announce(source, documents)` is told before each and may return a progress callback. A
    source another process is syncing is skipped (that sync cleans it); a failure is logged
    and left in the source's status, never stopping the start."""
    reports = []
    for info in syncer.index.sources():
        path = info.config.get("path")
        if info.kind != "folder" or not path or not Path(path).exists():
            continue
        count = syncer.ingestor.outdated(info.name)
        if not count:
            continue
        progress = announce(info.name, count) if announce else None
        try:
            reports.append(syncer.sync(info.name, full=True, progress=progress))
        except Busy:
            log.info("%s is being synced by another process: that sync re-checks it", info.name)
        except Exception:
            log.exception("re-checking %s under the new sanitizer rules failed", info.name)
    return reports
