"""The Confluence connector against the fake Confluence, through the real atlassian-python-api
client: storage format to Markdown, paging, polls, slim ids, restrictions, rate limits and
errors, attachments, and ingestion end to end."""
from __future__ import annotations

import datetime as dt
import socket
import time

import pytest

from knowledge.chunking import chunk_document
from knowledge.connectors.confluence import ConfluenceConnector
from knowledge.connectors.confluence_storage import StorageError, to_markdown
from knowledge.connectors.errors import ConfigurationError, ConnectorError, CredentialError
from knowledge.connectors.retry import Retry
from knowledge.documents import Document, Failure
from knowledge.index import Index
from knowledge.ingest import Ingestor
from knowledge.retrieval import Retriever
from tests.fakes.confluence_api import MALFORMED, FakeConfluence
from tests.fakes.server import serve
from tests.knowledge.test_ingest import pdf_bytes

LONG_AGO = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.timezone.utc)

RETURNS = """<h1>Returns &amp; refunds</h1>
<p>Items can be returned within <strong>30&nbsp;days</strong>. See
<ac:link><ri:page ri:content-title="Shipping" />
<ac:plain-text-link-body><![CDATA[our shipping page]]></ac:plain-text-link-body></ac:link>
and <a href="https://help.example/faq">the FAQ</a>.</p>
<ac:structured-macro ac:name="toc" ac:schema-version="1" ac:macro-id="3f1c">
<ac:parameter ac:name="maxLevel">2</ac:parameter></ac:structured-macro>
<h2>How to return an item</h2>
<ol><li>Open <em>Orders</em><ul><li>Pick the order</li>
<li>Click <code>Return</code><ul><li>Choose a reason</li></ul></li></ul></li>
<li><p>Print the label</p></li></ol>
<h2>Refund delays</h2>
<table data-layout="default"><colgroup><col style="width: 200px;" /><col /></colgroup><tbody>
<tr><th><p><strong>Payment</strong></p></th><th><p>Delay</p></th></tr>
<tr><td><p>Card</p></td><td><p>3 | 5 days</p></td></tr>
<tr><td colspan="2"><p>Gift cards are refunded at once</p></td></tr></tbody></table>
<ac:structured-macro ac:name="code" ac:schema-version="1"><ac:parameter ac:name="language">bash</ac:parameter>
<ac:plain-text-body><![CDATA[# refund by hand
curl -X POST "https://api.example/refunds?order=<id>" -d '{"amount": 10}']]></ac:plain-text-body></ac:structured-macro>
<ac:structured-macro ac:name="warning" ac:schema-version="1"><ac:parameter ac:name="title">Software</ac:parameter>
<ac:rich-text-body><p>Opened software can&rsquo;t be returned.</p></ac:rich-text-body></ac:structured-macro>
<p>Status: <ac:structured-macro ac:name="status"><ac:parameter ac:name="colour">Green</ac:parameter>
<ac:parameter ac:name="title">Approved</ac:parameter></ac:structured-macro>
<ac:structured-macro ac:name="jira"><ac:parameter ac:name="key">SUP-12</ac:parameter></ac:structured-macro>
<ac:emoticon ac:name="smile" /><ac:image><ri:attachment ri:filename="label.png" /></ac:image></p>"""


# --- storage format to Markdown ---------------------------------------------------------------

def test_storage_headings_paragraphs_and_link_texts():
    text = to_markdown(RETURNS)
    assert text.startswith("# Returns & refunds\n\nItems can be returned within 30 days. "
                           "See our shipping page and the FAQ.\n\n## How to return an item\n")
    assert "\n## Refund delays\n" in text and "Status: Approved" in text
    assert to_markdown('<p><ac:link><ri:page ri:content-title="Shipping" /></ac:link></p>') == "Shipping"


def test_storage_nested_lists_keep_their_depth():
    assert ("1. Open Orders\n   - Pick the order\n   - Click `Return`\n     - Choose a reason\n"
            "2. Print the label") in to_markdown(RETURNS)


def test_storage_tables_become_pipe_tables():
    assert ("| Payment | Delay |\n| --- | --- |\n| Card | 3 \\| 5 days |\n| Gift cards are refunded at once |  |"
            in to_markdown(RETURNS))


def test_storage_cells_spanning_columns_keep_the_others_in_place():
    table = to_markdown("<table><tbody><tr><th>Plan</th><th>Monthly</th><th>Yearly</th></tr>"
                        '<tr><td colspan="2">Free</td><td>0</td></tr></tbody></table>')
    assert table.splitlines()[2] == "| Free |  | 0 |"


def test_storage_code_macros_are_fenced_and_their_comments_are_not_headings():
    text = to_markdown(RETURNS)
    assert ('```bash\n# refund by hand\ncurl -X POST "https://api.example/refunds?order=<id>" '
            "-d '{\"amount\": 10}'\n```") in text
    document = Document(id="p", source="s", title="Returns", text=text)
    top = "Returns & refunds"
    sections = {top, *(f"{top} › {h}" for h in ("How to return an item", "Refund delays"))}
    assert {c.heading for c in chunk_document(document)} <= sections


def test_storage_panels_keep_their_words_and_textless_macros_vanish():
    text = to_markdown(RETURNS)
    assert "Warning – Software: Opened software can’t be returned." in text
    for gone in ("maxLevel", "SUP-12", "label.png", "smile", "Green"):
        assert gone not in text
    note = to_markdown('<ac:structured-macro ac:name="info"><ac:rich-text-body><ul><li>Keep the receipt</li></ul>'
                       '</ac:rich-text-body></ac:structured-macro>')
    assert note == "Info:\n\n- Keep the receipt"
    assert to_markdown("<p><ac:placeholder>Type a summary here</ac:placeholder></p><h2> </h2>") == ""


def test_storage_tasks_layouts_and_quotes():
    text = to_markdown('<ac:layout><ac:layout-section ac:type="two_equal"><ac:layout-cell><p>Left</p></ac:layout-cell>'
                       '<ac:layout-cell><blockquote><p>Quoted</p></blockquote></ac:layout-cell></ac:layout-section>'
                       '</ac:layout><ac:task-list><ac:task><ac:task-id>1</ac:task-id><ac:task-status>complete'
                       '</ac:task-status><ac:task-body>Ship it</ac:task-body></ac:task><ac:task><ac:task-id>2'
                       '</ac:task-id><ac:task-status>incomplete</ac:task-status><ac:task-body>Test it</ac:task-body>'
                       '</ac:task></ac:task-list>')
    assert text == "Left\n\n> Quoted\n\n- [x] Ship it\n- [ ] Test it"


@pytest.mark.parametrize("body", [MALFORMED, "<p>An &unknown; entity</p>", '<!DOCTYPE x [<!ENTITY a "b">]><p>&a;</p>'])
def test_storage_that_is_not_well_formed_is_refused(body):
    with pytest.raises(StorageError):
        to_markdown(body)


# --- the connector ----------------------------------------------------------------------------

@pytest.fixture
def fake():
    return FakeConfluence(page_size=3)


@pytest.fixture
def url(fake):
    with serve(fake.app()) as url:
        yield url


@pytest.fixture
def slept():
    return []


def connect(fake: FakeConfluence, url: str, slept: list | None = None, attempts: int = 4, **settings):
    return ConfluenceConnector("wiki", url=url, spaces=settings.pop("spaces", ["DOC"]),
                               token=settings.pop("token", fake.token),
                               username=fake.email if fake.cloud else "", cloud=fake.cloud,
                               retry=Retry(attempts=attempts, sleep=(slept if slept is not None else []).append),
                               **settings)


def test_load_reads_every_page_across_api_pages(fake, url):
    returns = fake.add_page("DOC", "Returns", RETURNS, when=LONG_AGO, labels=["policy"], author="Grace Hopper")
    others = [fake.add_page("DOC", f"Page {i}", f"<p>Page number {i} of the guide.</p>", parent=returns.id)
              for i in range(6)]
    ops = fake.add_page("OPS", "Runbook", "<h2>On call</h2><p>Page the on-call engineer.</p>")
    items = list(connect(fake, url + "/wiki", spaces=["DOC", "OPS"]).load())
    assert [d.id for d in items] == [returns.id, *(p.id for p in others), ops.id]
    assert len(fake.calls_to("/wiki/rest/api/content")) == 3 + 1  # 7 DOC pages 3 at a time, 1 OPS page
    doc = items[0]
    assert doc.text == to_markdown(RETURNS) and doc.title == "Returns" and doc.language == "en"
    assert doc.url == f"{url}/wiki/spaces/DOC/pages/{returns.id}/Returns"
    assert doc.updated_at == "2025-03-01T09:30:00.000Z"
    assert dict(doc.metadata) == {"author": "Grace Hopper", "labels": ["policy"], "space": "DOC", "ancestors": []}
    assert items[1].metadata["ancestors"] == ["Returns"]
    assert items[-1].text == "## On call\n\nPage the on-call engineer."
    assert all(c.authorization.startswith("Basic ") for c in fake.calls)


def test_data_center_signs_in_with_a_bearer_token_at_the_site_root():
    fake = FakeConfluence(cloud=False, page_size=2)
    pages = fake.generate(5)
    with serve(fake.app()) as url:
        items = list(connect(fake, url).load())
    assert [d.id for d in items] == [p.id for p in pages]
    assert items[0].url == f"{url}/display/DOC/Returns+guide+0" and items[0].updated_at.endswith("+00:00")
    assert {c.authorization for c in fake.calls} == {f"Bearer {fake.token}"}
    assert all(c.path.startswith("/rest/api/") for c in fake.calls)


def test_generated_pages_convert_with_their_structure(fake, url):
    fake.page_size = 25
    fake.generate(60)
    items = list(connect(fake, url).load())
    assert len(items) == 60 and all(isinstance(d, Document) for d in items)
    assert all("## Steps\n\n1. Open Orders" in d.text and "| Country | Delay |" in d.text for d in items)
    assert sum("```bash\n# look the order up" in d.text for d in items) == 20


def test_poll_returns_only_pages_changed_since_whatever_the_account_time_zone(fake, url):
    fake.timezone = dt.timezone(dt.timedelta(hours=-8))  # CQL dates are read in the account's zone
    now = dt.datetime.now(dt.timezone.utc)
    _, edited, earlier = (fake.add_page("DOC", t, f"<p>{t} text.</p>", when=LONG_AGO)
                          for t in ("Old", "Edited", "Earlier"))
    fake.edit_page(edited.id, body="<p>Edited text, new version.</p>", when=now - dt.timedelta(minutes=30))
    fake.edit_page(earlier.id, when=now - dt.timedelta(hours=3))
    new = fake.add_page("DOC", "New", "<p>A new page.</p>", when=now - dt.timedelta(minutes=5))
    changed = list(connect(fake, url).poll(time.time() - 3600))
    assert [d.id for d in changed] == [edited.id, new.id] and changed[0].text == "Edited text, new version."
    assert 'lastmodified >= "' in fake.calls_to("/content/search")[0].params["cql"]


def test_slim_yields_exactly_the_ids_of_load_without_reading_bodies(fake, url):
    for i in range(7):
        page = fake.add_page("DOC", f"Page {i}", MALFORMED if i == 2 else f"<p>Text {i}.</p>")
        fake.add_attachment(page.id, f"notes-{i}.txt", f"Notes {i}".encode(), "text/plain")
        fake.add_attachment(page.id, f"photo-{i}.png", b"\x89PNG", "image/png")
    connector = connect(fake, url, attachments=True)
    loaded = [d.id if isinstance(d, Document) else d.document_id for d in connector.load()]
    fake.calls.clear()
    assert sorted(connector.slim()) == sorted(loaded) and len(loaded) == 14
    assert not any("body" in c.params.get("expand", "") or "download" in c.path for c in fake.calls)


def test_read_restrictions_make_pages_internal(fake, url):
    open_page = fake.add_page("DOC", "Open", "<p>Everyone may read this.</p>")
    private = fake.add_page("DOC", "Private", "<p>Only HR reads this.</p>")
    hr = fake.add_page("DOC", "HR", "<p>HR handbook.</p>")
    child = fake.add_page("DOC", "Salaries", "<p>Salary bands.</p>", parent=hr.id)
    fake.restrict(private.id, users=["Ada Lovelace"])
    fake.restrict(hr.id, groups=["hr"])
    visibility = {d.id: d.visibility for d in connect(fake, url).load()}
    assert visibility == {open_page.id: "public", private.id: "internal", hr.id: "internal", child.id: "internal"}


def test_rate_limits_are_waited_out_as_retry_after_says(fake, url, slept):
    pages = fake.generate(4)
    fake.fail(429, times=2, retry_after=7)
    items = list(connect(fake, url, slept).load())
    assert [d.id for d in items] == [p.id for p in pages]
    assert slept == [7.0, 7.0]  # waited through our Retry: the client's own sleeping is off
    assert [c.status for c in fake.calls[:3]] == [429, 429, 200]


def test_persistent_server_errors_give_up_after_bounded_attempts(fake, url, slept):
    fake.generate(2)
    fake.fail(500, times=50)
    with pytest.raises(ConnectorError, match="kept answering HTTP 500") as error:
        list(connect(fake, url, slept, attempts=3).load())
    assert type(error.value) is ConnectorError and len(fake.calls) == 3 and slept == [1.0, 2.0]


@pytest.mark.parametrize("revoked", [True, False])
def test_a_refused_token_is_a_credential_error_that_says_what_to_do(fake, url, slept, revoked):
    fake.generate(2)
    token = fake.token if revoked else "not-the-token"
    if revoked:
        fake.revoke()
    with pytest.raises(CredentialError) as error:
        list(connect(fake, url, slept, token=token).load())
    message = str(error.value)
    assert f"Confluence rejected the API token for {url}" in message and "create a new token" in message
    assert token not in message and len(fake.calls) == 1 and slept == []


def test_pages_whose_restrictions_cant_be_read_count_as_internal(fake, url):
    fake.ignored_expansions = {"restrictions"}
    fake.generate(2)
    assert {d.visibility for d in connect(fake, url).load()} == {"internal"}


def test_an_unknown_space_is_a_configuration_error(fake, url):
    fake.generate(2)
    with pytest.raises(ConfigurationError, match="space 'NOPE' not found"):
        next(connect(fake, url, spaces=["DOC", "NOPE"]).load())
    assert not fake.calls_to("/rest/api/content")  # refused before reading anything


def test_an_unreachable_site_is_a_connector_error(fake, slept):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(ConnectorError, match="can't be reached"):
            list(connect(fake, url, slept, attempts=2).load())
    assert slept == [1.0]


def test_a_malformed_page_is_a_failure_and_the_others_still_come(fake, url):
    pages = fake.generate(5)
    fake.edit_page(pages[1].id, body=MALFORMED)
    items = list(connect(fake, url).load())
    assert [type(i) for i in items] == [Document, Failure, Document, Document, Document]
    assert items[1].document_id == pages[1].id and "not well-formed" in items[1].error


def test_pdf_and_text_attachments_become_documents_when_enabled(fake, url):
    page = fake.add_page("DOC", "Warranty", "<p>See the attached terms.</p>", when=LONG_AGO)
    pdf = fake.add_attachment(page.id, "Warranty terms.pdf", pdf_bytes("Claims are handled within ten days."),
                              "application/pdf", when=LONG_AGO)
    txt = fake.add_attachment(page.id, "notes.txt", b"Keep the receipt for two years.", "text/plain", when=LONG_AGO)
    fake.add_attachment(page.id, "logo.png", b"\x89PNG\r\n", "image/png", when=LONG_AGO)
    fake.restrict(page.id, groups=["support"])
    assert [d.id for d in connect(fake, url).load()] == [page.id]
    items = {d.id: d for d in connect(fake, url, attachments=True).load()}
    assert set(items) == {page.id, f"att:{pdf.id}", f"att:{txt.id}"}
    terms = items[f"att:{pdf.id}"]
    assert "Claims are handled within ten days." in terms.text and terms.title == "Warranty terms.pdf"
    assert terms.visibility == "internal" and terms.metadata["page"] == page.id
    assert items[f"att:{txt.id}"].text == "Keep the receipt for two years."
    assert terms.url.startswith(f"{url}/wiki/pages/viewpageattachments.action?pageId={page.id}")
    added = fake.add_attachment(page.id, "faq.txt", b"Questions and answers.", "text/plain")
    changed = {d.id for d in connect(fake, url, attachments=True).poll(time.time() - 60)}
    assert changed == {page.id, f"att:{pdf.id}", f"att:{txt.id}", f"att:{added.id}"}


def test_config_keeps_the_token_out(fake, url):
    connector = connect(fake, url, spaces=["DOC", "OPS"], attachments=True)
    assert connector.config() == {"url": url, "spaces": ["DOC", "OPS"], "cloud": True, "attachments": True}
    assert fake.token not in repr(connector.config()) and connector.kind == "confluence"


def test_ingest_end_to_end_then_an_upstream_deletion_is_pruned(fake, url, tmp_path, embedder):
    returns = fake.add_page("DOC", "Returns", RETURNS)
    shipping = fake.add_page("DOC", "Shipping", "<h2>Belgium</h2><p>Parcels reach Belgium in three to five "
                                                "business days.</p>")
    gift = fake.add_page("DOC", "Gift cards", "<p>Gift cards are valid for one year.</p>")
    index = Index(tmp_path / "index.sqlite3")
    try:
        report = Ingestor(index, embedder).ingest(connect(fake, url))
        assert report.added == 3 and not report.failures and index.source("wiki").status == "success"
        top = Retriever(index, embedder).search("how long does delivery to Belgium take")[0].stored
        assert top.chunk.document_id == shipping.id and top.url.endswith(f"/pages/{shipping.id}/Shipping")
        fake.delete_page(returns.id)
        report = Ingestor(index, embedder).ingest(connect(fake, url))
        assert (report.removed, report.unchanged, report.added) == (1, 2, 0)
        assert index.document_ids("wiki") == {shipping.id, gift.id}
    finally:
        index.close()
