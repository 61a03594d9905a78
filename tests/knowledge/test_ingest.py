"""Ingesting a folder: formats, incremental re-ingest, deletions, bad files, status."""
from __future__ import annotations

import pytest

from knowledge.connectors.folder import FolderConnector
from knowledge.index import Index
from knowledge.ingest import Ingestor
from knowledge.retrieval import Retriever


def pdf_bytes(text: str) -> bytes:
    """A minimal valid one-page PDF showing `text` (offsets computed, so pypdf reads it)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "kb"
    (root / "en").mkdir(parents=True)
    (root / "en" / "delivery.md").write_text(
        "---\ntitle: Delivery\nurl: https://help.example/delivery\nupdated_at: 2026-01-02\n---\n"
        "## Belgium\n\nParcels reach Belgium in three to five business days.\n\n"
        "## Switzerland\n\nParcels reach Switzerland in five to eight business days.\n")
    (root / "en" / "faq.html").write_text(
        "<html><head><title>Gift cards</title><script>var x=1;</script></head><body>"
        "<h2>Validity</h2><p>Gift cards are valid for <b>one year</b>.</p><ul><li>Online</li></ul></body></html>")
    (root / "notes.txt").write_text("Our warehouse is closed on public holidays.")
    (root / "manual.pdf").write_bytes(pdf_bytes("Warranty claims are handled within ten days."))
    (root / ".hidden.md").write_text("secret draft")
    return root


@pytest.fixture
def index(tmp_path):
    idx = Index(tmp_path / "index.sqlite3")
    yield idx
    idx.close()


def ingest(index, embedder, path, source="kb"):
    return Ingestor(index, embedder).ingest(FolderConnector(path, source))


def test_every_format_is_read_and_searchable(index, embedder, folder):
    report = ingest(index, embedder, folder)
    assert report.added == 4 and not report.failures
    assert index.document_ids("kb") == {"en/delivery", "en/faq", "notes", "manual"}
    retriever = Retriever(index, embedder)
    assert retriever.search("how long to ship to Belgium")[0].stored.chunk.document_id == "en/delivery"
    assert retriever.search("gift card validity")[0].stored.title == "Gift cards"
    assert retriever.search("warranty claim delay")[0].stored.chunk.document_id == "manual"
    top = retriever.search("Belgium delivery")[0].stored
    assert top.url == "https://help.example/delivery" and top.updated_at == "2026-01-02"
    assert "var x" not in " ".join(h.stored.chunk.text for h in retriever.search("var x", k=20))


def test_reingesting_unchanged_documents_costs_nothing(index, embedder, folder):
    ingest(index, embedder, folder)
    generation = index.generation()
    report = ingest(index, embedder, folder)
    assert (report.unchanged, report.added, report.updated, report.chunks_embedded) == (4, 0, 0, 0)
    assert index.source("kb").status == "success"
    assert index.generation() == generation + 3  # only status writes, no document write


def test_an_edit_re_embeds_only_the_changed_section(index, embedder, folder):
    ingest(index, embedder, folder)
    page = folder / "en" / "delivery.md"
    page.write_text(page.read_text().replace("five to eight", "six to nine"))
    report = ingest(index, embedder, folder)
    assert (report.updated, report.chunks_embedded, report.chunks_reused) == (1, 1, 1)
    hit = Retriever(index, embedder).search("delivery Switzerland")[0]
    assert "six to nine" in hit.stored.chunk.text


def test_a_removed_file_leaves_the_index(index, embedder, folder):
    ingest(index, embedder, folder)
    (folder / "notes.txt").unlink()
    report = ingest(index, embedder, folder)
    assert report.removed == 1 and "notes" not in index.document_ids("kb")
    hits = Retriever(index, embedder).search("warehouse public holidays", k=20)
    assert all(h.stored.chunk.document_id != "notes" for h in hits)


def test_bad_files_are_reported_and_keep_their_previous_version(index, embedder, folder):
    ingest(index, embedder, folder)
    (folder / "notes.txt").write_bytes(b"\x00\x01\x02binary\xff")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (folder / "bad.md").write_text("---\ntitle: [unclosed\n---\nbody")
    report = ingest(index, embedder, folder)
    reasons = {f.document_id: f.error for f in report.failures}
    assert set(reasons) == {"notes", "broken", "bad"}
    assert "binary" in reasons["notes"] and "PDF" in reasons["broken"] and "front matter" in reasons["bad"]
    assert "notes" in index.document_ids("kb")  # nothing already stored is lost
    info = index.source("kb")
    assert info.status == "success" and info.failures == 3 and "3 document(s)" in info.error


def test_the_source_names_its_failed_documents_until_they_are_fixed(index, embedder, folder):
    (folder / "en" / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    ingest(index, embedder, folder)
    [(document_id, why)] = index.source("kb").failed
    assert document_id == "en/broken" and why.startswith("en/broken.pdf: ") and "PDF" in why
    (folder / "en" / "broken.pdf").unlink()
    ingest(index, embedder, folder)
    info = index.source("kb")
    assert info.failed == () and info.failures == 0 and info.error is None


def test_a_missing_folder_fails_the_source_with_its_reason(index, embedder, tmp_path):
    with pytest.raises(FileNotFoundError):
        ingest(index, embedder, tmp_path / "nowhere")
    info = index.source("kb")
    assert info.status == "failed" and "no such file or folder" in info.error


def test_qa_form_and_catalog_become_one_document_per_entry(index, embedder, tmp_path):
    form = tmp_path / "qa.yaml"
    form.write_text("answers:\n  - key: pickup\n    question: {en: 'Store pickup?', fr: 'Retrait en magasin ?'}\n"
                    "    answer: {en: Yes in Lyon., fr: Oui à Lyon.}\n")
    catalog = tmp_path / "offers.csv"
    catalog.write_text("id,name,price,currency,stock,description,url\nA1,Brass lamp,89.00,EUR,0,A lamp.,https://x/A1\n")
    assert not ingest(index, embedder, form, "faq").failures
    ingest(index, embedder, catalog, "catalog")
    assert index.document_ids("faq") == {"qa#pickup@en", "qa#pickup@fr"}
    hit = Retriever(index, embedder).search("brass lamp price", sources=["catalog"])[0]
    assert "89.00 EUR" in hit.stored.chunk.text and "out of stock" in hit.stored.chunk.text


def test_the_slim_pass_yields_exactly_the_ids_of_the_full_pass(folder):
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    connector = FolderConnector(folder, "kb")
    full = [item.id if hasattr(item, "id") else item.document_id for item in connector.load()]
    assert sorted(connector.slim()) == sorted(full) and "broken" in full
