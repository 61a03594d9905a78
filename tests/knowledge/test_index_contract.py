"""One contract, two backends: every test here runs against the SQLite index and the
PostgreSQL + pgvector index (a real server, tests/pgvector_service.py), with the real
embedder. The last tests build both from one corpus and check they rank alike."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from knowledge import lexical
from knowledge.connectors.folder import FolderConnector
from knowledge.documents import Chunk, Document
from knowledge.index import Index, title_hash
from knowledge.index_pg import PgIndex
from knowledge.ingest import Ingestor
from knowledge.retrieval import Retriever
from knowledge.sync import lease_lock
from tests.pgvector_service import migrated_schema

FILES = {
    "returns.md": "# Returns\n\nYou have 30 days to return an item. Refunds arrive within 5 days.\n",
    "delivery.md": "# Delivery\n\nParcels ship in 2 days. Delivery to Belgium takes 4 days.\n",
    "warranty.md": "# Warranty\n\nEvery lamp has a two-year warranty against defects.\n",
    "livraison.md": "# Livraison\n\nLes colis partent sous 2 jours. La livraison en Belgique prend 4 jours.\n",
    "pickup.md": "# Store pickup\n\nCollect your order at the Lyon store, Tuesday to Saturday.\n",
}


def write_corpus(folder: Path, files: dict[str, str] = FILES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    """(open a connection to the index, the index): a second call is another process's view."""
    if request.param == "sqlite":
        def opener():
            return Index(tmp_path / "index.sqlite3")
        yield from _opened(opener)
    else:
        url = request.getfixturevalue("pgvector_url")
        with migrated_schema(url) as schema:
            yield from _opened(lambda: PgIndex(url, schema))


def _opened(opener):
    opened = []

    def open_one():
        opened.append(opener())
        return opened[-1]
    try:
        yield open_one, open_one()
    finally:
        for index in opened:
            index.close()


@pytest.fixture
def index(backend):
    return backend[1]


def ingest(index, embedder, folder: Path, source: str = "kb"):
    return Ingestor(index, embedder).ingest(FolderConnector(folder, source))


def test_sources_documents_and_stats(index, embedder, tmp_path):
    report = ingest(index, embedder, write_corpus(tmp_path / "kb"))
    assert report.added == 5
    [info] = index.sources()
    assert (info.name, info.kind, info.status, info.documents) == ("kb", "folder", "success", 5)
    assert info.chunks == index.stats()["chunks"] >= 5
    assert index.stats()["documents"] == 5 and index.stats()["bytes"] > 0
    assert index.document_ids("kb") == {"returns", "delivery", "warranty", "livraison", "pickup"}
    assert index.source("missing") is None
    index.add_source("kb", "folder", {"interval": 60})  # settings merge into what was stored
    assert index.source("kb").config["interval"] == 60 and "path" in index.source("kb").config


def test_status_failures_are_named(index):
    index.add_source("wiki", "notion", {})
    index.set_status("wiki", "failed", "token revoked", 2, [("a", "bad"), ("b", "worse")])
    info = index.source("wiki")
    assert (info.status, info.error, info.failures, info.failed) == ("failed", "token revoked", 2,
                                                                   (("a", "bad"), ("b", "worse")))
    assert info.last_sync is not None


def test_removing_documents_and_sources(index, embedder, tmp_path):
    folder = write_corpus(tmp_path / "kb")
    ingest(index, embedder, folder)
    before = index.generation()
    assert "lyon" in index.vocabulary()
    (folder / "pickup.md").unlink()
    report = ingest(index, embedder, folder)
    assert report.removed == 1 and "pickup" not in index.document_ids("kb")
    assert index.generation() > before
    assert "lyon" not in index.vocabulary()  # the only chunk holding it is gone
    assert not index.lexical(["lyon"], None, False, 10)
    assert index.remove("kb", ["returns", "nothing"]) == 1
    assert index.remove_source("kb") == 3
    assert index.sources() == [] and index.stats()["chunks"] == 0 and index.vocabulary() == {}


def test_unchanged_documents_reuse_their_vectors(index, embedder, tmp_path):
    folder = write_corpus(tmp_path / "kb")
    ingest(index, embedder, folder)
    (folder / "returns.md").write_text(FILES["returns.md"] + "\n## Exchanges\n\nExchanges are free.\n")
    report = ingest(index, embedder, folder)
    assert (report.updated, report.unchanged) == (1, 4)
    assert report.chunks_reused >= 1 and report.chunks_embedded >= 1


def test_cached_vectors_come_back_bit_for_bit(index):  # built through put directly: the vectors are ours
    document = Document(id="d", source="s", title="Title", text="x", language="en")
    chunk = Chunk("d#0", "d", "s", 0, "", "some text")
    vector = np.random.default_rng(1).standard_normal((1, 8)).astype(np.float32)
    title = np.random.default_rng(2).standard_normal(8).astype(np.float32)
    index.put([(document, [chunk], ["h0"], vector, title)], "m", [(["titl"], ["some", "text"])])
    found = index.cached_vectors(["h0", "nope"], "m")
    assert set(found) == {"h0"} and found["h0"].tobytes() == vector[0].tobytes()
    assert index.cached_vectors([title_hash("Title", "m")], "m")[title_hash("Title", "m")].tobytes() == title.tobytes()
    assert index.cached_vectors(["h0"], "other model") == {}


def test_flagged_documents(index):
    vector = np.ones((1, 4), dtype=np.float32) / 2
    for doc_id in ("a", "b"):
        document = Document(id=doc_id, source="s", title="", text="x", language="en")
        flag = SimpleNamespace(kind="instruction", rule="ignore_instructions", snippet=f"ignore {doc_id}")
        index.put([(document, [Chunk(f"{doc_id}#0", doc_id, "s", 0, "", "x")], [doc_id], vector, None)], "m",
                  [([], ["x"])], [[flag]])
    assert [(f.document_id, f.rule, f.snippet) for f in index.flagged("s")] == [
        ("a", "ignore_instructions", "ignore a"), ("b", "ignore_instructions", "ignore b")]
    assert index.flagged("other") == []
    index.remove("s", ["a"])
    assert [f.document_id for f in index.flagged()] == ["b"]


def test_stripped_documents(index, embedder, tmp_path):
    files = {**FILES, "returns.md": "# Returns\n\nYou have 30 days\u200b\u200b to return an item.<!-- a note -->\n",
             "pickup.md": "# Pickup\n\n<!-- one --> Collect your order in Lyon. <!-- two -->\n"}
    ingest(index, embedder, write_corpus(tmp_path / "kb", files))
    ingest(index, embedder, write_corpus(tmp_path / "other", {"plain.md": "# Plain\n\nNothing hidden here.\n"}),
           source="other")
    assert [(s.source, s.document_id, s.kinds, s.total) for s in index.stripped()] == [
        ("kb", "pickup", (("html_comment", 2),), 2),
        ("kb", "returns", (("html_comment", 1), ("invisible", 2)), 3)]
    assert [s.title for s in index.stripped("kb")] == ["Pickup", "Returns"] and index.stripped("other") == []
    index.remove("kb", ["pickup"])
    assert [s.document_id for s in index.stripped()] == ["returns"]


def test_cursor_and_checkpoint(index):
    index.add_source("wiki", "notion", {})
    assert index.source("wiki").cursor is None
    index.set_cursor("wiki", 1234.5, "page-token")
    info = index.source("wiki")
    assert (info.cursor, info.checkpoint) == (1234.5, "page-token")


def test_leases_are_exclusive_across_processes(backend):
    open_index, index = backend
    other = open_index()  # another process's connection to the same index
    index.add_source("wiki", "notion", {})
    assert index.lease("wiki", "worker-a", 60)
    assert not other.lease("wiki", "worker-b", 60)
    assert index.lease("wiki", "worker-a", 60)  # renewed by its holder
    other.release("wiki", "worker-b")  # not its lease: nothing happens
    assert not other.lease("wiki", "worker-b", 60)
    index.release("wiki", "worker-a")
    assert other.lease("wiki", "worker-b", -1)  # taken, already expired (a crashed holder)
    assert index.lease("wiki", "worker-a", 60)  # an expired lease is taken over
    with lease_lock(other)("wiki") as mine:
        assert not mine


def test_search_results(index, embedder, tmp_path):
    ingest(index, embedder, write_corpus(tmp_path / "kb"))
    hits = index.lexical(lexical.terms("return an item"), None, False, 10)
    top = index.chunks([hits[0][0]])[hits[0][0]]
    assert top.chunk.document_id == "returns" and top.title == "Returns" and hits[0][1] > 0
    assert index.lexical(lexical.terms("return"), ["elsewhere"], False, 10) == []
    retriever = Retriever(index, embedder)
    assert retriever.search("How long do I have to send an item back?", k=1)[0].stored.chunk.document_id == "returns"
    assert retriever.search("combien de temps pour la Belgique ?", k=3, sources=["kb"])[0].stored.language == "fr"


@pytest.fixture
def both(tmp_path, pgvector_url, embedder):
    folder = write_corpus(tmp_path / "kb")
    sqlite = Index(tmp_path / "index.sqlite3")
    with migrated_schema(pgvector_url) as schema:
        postgres = PgIndex(pgvector_url, schema)
        for index in (sqlite, postgres):
            ingest(index, embedder, folder)
        yield sqlite, postgres
        postgres.close()
    sqlite.close()


QUERIES = ("return an item", "delivery Belgium days", "livraison Belgique", "lamp warranty", "store Lyon Saturday",
           "refund")


def test_backends_rank_alike(both, embedder):
    sqlite, postgres = both
    assert sqlite.vocabulary() == postgres.vocabulary()
    for query in QUERIES:
        terms = lexical.terms(query)
        ranked = [[(index.chunks([r])[r].chunk.id, round(s, 6)) for r, s in index.lexical(terms, None, False, 10)]
                  for index in (sqlite, postgres)]
        assert ranked[0] == ranked[1] and ranked[0], query  # same chunks, same BM25 scores
        for mode in ("dense", "hybrid"):
            hits = [[(h.stored.chunk.id, round(h.score, 6)) for h in Retriever(index, embedder).search(query, mode=mode)]
                    for index in (sqlite, postgres)]
            assert hits[0] == hits[1], (query, mode)


def test_postgres_index_reconnects_after_an_outage(embedder, tmp_path):
    """The server goes away and comes back: the call that met the outage fails, the next works."""
    import psycopg

    from tests.pgvector_service import pgvector_service

    with pgvector_service() as service, migrated_schema(service.url) as schema:
        index = PgIndex(service.url, schema)
        try:
            ingest(index, embedder, write_corpus(tmp_path / "kb"))
            service.stop()
            with pytest.raises(psycopg.OperationalError):
                index.sources()
            service.start()
            assert [s.name for s in index.sources()] == ["kb"]
            assert Retriever(index, embedder).search("return an item", k=1)[0].stored.chunk.document_id == "returns"
        finally:
            index.close()


def _pg(index: PgIndex, statement: str, params: tuple = ()) -> list[tuple]:
    """`statement` on a connection of its own (another process's view of the index)."""
    import psycopg

    with psycopg.connect(index.url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def _pg_indexes(index: PgIndex) -> set[str]:
    return {r[0] for r in _pg(index, "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (index.schema,))}


def test_bulk_load_builds_the_indexes_once_and_ranks_as_row_by_row(tmp_path, pgvector_url, embedder):
    """`index copy`'s bulk load: no HNSW/GIN upkeep while rows land, the same rankings after."""
    folder = write_corpus(tmp_path / "kb")
    sqlite = Index(tmp_path / "index.sqlite3")
    ingest(sqlite, embedder, folder)
    with migrated_schema(pgvector_url) as schema:
        postgres = PgIndex(pgvector_url, schema)
        try:
            with postgres.bulk_load():
                ingest(postgres, embedder, folder)
                assert not {"chunks_dense", "chunks_terms"} & _pg_indexes(postgres)
            assert {"chunks_dense", "chunks_terms"} <= _pg_indexes(postgres)
            for query in QUERIES:
                hits = [[(h.stored.chunk.id, round(h.score, 6)) for h in Retriever(index, embedder).search(query)]
                        for index in (sqlite, postgres)]
                assert hits[0] == hits[1] and hits[0], query
            with pytest.raises(ValueError, match="empty"):
                with postgres.bulk_load():
                    pass
            assert {"chunks_dense", "chunks_terms"} <= _pg_indexes(postgres)  # a refused load drops nothing
        finally:
            postgres.close()
    sqlite.close()


def test_an_interrupted_bulk_load_still_leaves_a_searchable_index(tmp_path, pgvector_url, embedder):
    folder = write_corpus(tmp_path / "kb")
    with migrated_schema(pgvector_url) as schema:
        postgres = PgIndex(pgvector_url, schema)
        try:
            with pytest.raises(RuntimeError):
                with postgres.bulk_load():
                    ingest(postgres, embedder, folder)
                    raise RuntimeError("the copy died half-way")
            assert {"chunks_dense", "chunks_terms"} <= _pg_indexes(postgres)
            # A process killed inside the load never reaches its end: the next ordinary write builds them.
            _pg(postgres, f'DROP INDEX "{postgres.schema}".chunks_dense, "{postgres.schema}".chunks_terms')
            write_corpus(folder, {"returns.md": FILES["returns.md"]
                                  + "\nInstead of a refund, a gift voucher is also offered.\n"})
            assert ingest(postgres, embedder, folder).updated == 1
            assert {"chunks_dense", "chunks_terms"} <= _pg_indexes(postgres)
            assert Retriever(postgres, embedder).search("gift voucher", k=1)[0].stored.chunk.document_id == "returns"
        finally:
            postgres.close()


def test_the_postgres_index_searches_with_the_configured_hnsw_breadth(pgvector_url):
    from knowledge.indexes import open_index

    with migrated_schema(pgvector_url) as schema:
        for asked, expected in ((321, "321"), (None, "200")):
            index = open_index(pgvector_url, schema, ef_search=asked)
            try:
                assert index._rows("SHOW hnsw.ef_search") == [(expected,)]
            finally:
                index.close()
