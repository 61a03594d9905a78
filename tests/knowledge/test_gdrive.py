"""The Google Drive connector through the real google-api-python-client and google-auth,
against the fake Drive API and token endpoint (tests/fakes/google_api.py): service-account
sign-in, folders and shared drives, exports, the changes feed, sharing, retries and errors."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from knowledge.connectors.errors import ConfigurationError, ConnectorError, CredentialError
from knowledge.connectors.gdrive import GoogleDriveConnector
from knowledge.connectors.gdrive_export import clean_markdown, html_to_markdown
from knowledge.connectors.retry import Retry
from knowledge.documents import Document, Failure, Removed
from knowledge.index import Index
from knowledge.ingest import Ingestor
from knowledge.retrieval import Retriever
from tests.fakes.google_api import FakeGoogle, render_docs_html, rsa_private_key
from tests.fakes.server import serve
from tests.knowledge.test_ingest import pdf_bytes

RETURNS = """# Returns

You can return any item within 30 days.

## Conditions

- Unused and in its box
- With the receipt
  - or the order number

## Refunds by method

| Method | Delay |
| --- | --- |
| Card | 5 days |
| PayPal | 2 days |
"""


@pytest.fixture(scope="module")
def server():
    """One server for the module; each test gets a fresh fake behind it."""
    current = {}

    async def app(scope, receive, send):
        await current["app"](scope, receive, send)

    with serve(app) as url:
        yield current, url


@pytest.fixture
def google(server) -> FakeGoogle:
    current, url = server
    fake = FakeGoogle(max_page_size=3)  # small pages, so every listing crosses pages
    fake.url = url
    current["app"] = fake.app()
    return fake


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def key_file(google, tmp_path):
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(google.service_account_key()))
    return path


@pytest.fixture
def connect(google, key_file, waits):
    def make(**options) -> GoogleDriveConnector:
        options.setdefault("retry", Retry(attempts=4, sleep=waits.append))
        options.setdefault("api_endpoint", google.url)
        return GoogleDriveConnector.from_service_account_file("drive", key_file, **options)
    return make


@pytest.fixture
def kb(google) -> dict[str, str]:
    """A help folder with Docs, a PDF, text files and an image, two levels of subfolders,
    and a folder outside it."""
    ids = {"root": google.add_folder("Help")}
    ids["returns"] = google.add_doc("Returns", RETURNS, ids["root"])
    ids["shipping"] = google.add_doc("Shipping", "# Shipping\n\nParcels reach Belgium in three days.\n", ids["root"])
    ids["billing"] = google.add_doc("Billing", "# Billing\n\n## Invoices\n\nInvoices are sent by email.\n", ids["root"])
    ids["image"] = google.add_file("logo.png", "image/png", b"\x89PNG\r\n\x1a\n", ids["root"])
    ids["policies"] = google.add_folder("Policies", ids["root"])
    ids["warranty"] = google.add_doc("Warranty", "# Warranty\n\nTwo years on every appliance.\n", ids["policies"])
    ids["manual"] = google.add_file("manual.pdf", "application/pdf",
                                    pdf_bytes("Warranty claims are handled within ten days."), ids["policies"])
    ids["notes"] = google.add_file("notes.txt", "text/plain", b"Our warehouse is closed on public holidays.",
                                   ids["policies"])
    ids["faq"] = google.add_file("faq.md", "text/markdown", b"# FAQ\n\n## Gift cards\n\nValid for one year.\n",
                                 ids["policies"])
    ids["archive"] = google.add_folder("Archive", ids["policies"])
    ids["terms"] = google.add_doc("Old terms", "# Old terms\n\nThese terms applied until 2024.\n", ids["archive"])
    ids["other"] = google.add_folder("Elsewhere")
    ids["secret"] = google.add_doc("Salaries", "# Salaries\n\nNot for the bot.\n", ids["other"])
    return ids


def by_kind(items) -> tuple[dict[str, Document], set[str], list[Failure]]:
    items = list(items)
    return ({i.id: i for i in items if isinstance(i, Document)},
            {i.document_id for i in items if isinstance(i, Removed)},
            [i for i in items if isinstance(i, Failure)])


IN_SCOPE = ("returns", "shipping", "billing", "warranty", "manual", "notes", "faq", "terms")


# -- signing in ---------------------------------------------------------------------------------

def test_the_service_account_key_is_exchanged_for_a_token(google, kb, connect):
    ids = set(connect(folders=[kb["root"]]).slim())
    assert ids == {kb[k] for k in IN_SCOPE}
    [grant] = google.calls_to("token")
    assert grant.params["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer" and grant.status == 200
    assert all(c.status == 200 for c in google.calls if c.method != "token")


def test_a_forged_key_is_refused_with_a_message_to_act_on(google, kb, tmp_path):
    key = google.service_account_key()
    key["private_key"] = rsa_private_key(1)  # signs with a key Google doesn't know
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(key))
    connector = GoogleDriveConnector.from_service_account_file("drive", path, folders=[kb["root"]],
                                                               api_endpoint=google.url)
    with pytest.raises(CredentialError) as caught:
        list(connector.load())
    message = str(caught.value)
    assert key["client_email"] in message and "Invalid JWT Signature" in message
    assert "re-create the key and update GOOGLE_APPLICATION_CREDENTIALS" in message
    assert "PRIVATE KEY" not in message and key["private_key_id"] not in message
    assert google.calls_to("token")[0].status == 400


def test_a_revoked_key_is_a_credential_error_without_secrets(google, kb, connect, key_file):
    connector = connect(folders=[kb["root"]])
    assert len(list(connector.slim())) == len(IN_SCOPE)
    google.revoke()  # key deleted, tokens revoked: 401, then the refresh is refused
    with pytest.raises(CredentialError) as caught:
        list(connector.load())
    message = str(caught.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message and "switchboard@" in message
    key = json.loads(key_file.read_text())
    assert key["private_key"][40:80] not in message and "ya29." not in message
    assert [c.status for c in google.calls_to("token")] == [200, 400]


def test_an_expired_token_is_renewed_without_the_caller_noticing(google, kb, connect):
    connector = connect(folders=[kb["root"]])
    list(connector.slim())
    google.expire_tokens()
    assert len(list(connector.slim())) == len(IN_SCOPE)
    assert [c.status for c in google.calls_to("token")] == [200, 200]


def test_a_401_after_refreshing_or_a_missing_scope_is_a_credential_error(google, kb, connect):
    connector = connect(folders=[kb["root"]])
    google.fail(401, times=None, reason="authError")
    with pytest.raises(CredentialError, match="re-create the key"):
        list(connector.slim())
    assert len(google.calls_to("token")) == 3  # google-auth renewed the token twice before giving up
    google.recover()
    google.fail(403, times=None, reason="insufficientPermissions")
    with pytest.raises(CredentialError, match="give the credentials the drive.readonly scope"):
        list(connect(folders=[kb["root"]]).slim())


def test_a_plain_access_token_works_until_it_is_revoked(google, kb):
    connector = GoogleDriveConnector.from_token("drive", google.token, folders=[kb["root"]], api_endpoint=google.url)
    assert len(list(connector.slim())) == len(IN_SCOPE)
    google.revoke()
    with pytest.raises(CredentialError, match="rejected the OAuth access token .*sign in again") as caught:
        list(connector.slim())
    assert google.token not in str(caught.value)


def test_an_unusable_key_file_is_a_credential_error(tmp_path):
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nabc"}))
    with pytest.raises(CredentialError, match="key.json.*missing fields.*GOOGLE_APPLICATION_CREDENTIALS") as caught:
        GoogleDriveConnector.from_service_account_file("drive", path, folders=["1Folder"])
    assert "abc" not in str(caught.value)
    with pytest.raises(CredentialError, match="No such file"):
        GoogleDriveConnector.from_service_account_file("drive", tmp_path / "absent.json", folders=["1Folder"])


def test_config_holds_the_scope_and_no_key_material(google, connect, kb):
    connector = connect(folders=[kb["root"]], domain="example.com")
    assert connector.kind == "gdrive"
    assert connector.config() == {"folders": [kb["root"]], "drives": [], "domain": "example.com"}
    assert "PRIVATE" not in json.dumps(connector.config())
    same = connect(folders=[kb["root"]], api_endpoint=f"{google.url}/drive/v3/")
    assert set(same.slim()) == {kb[k] for k in IN_SCOPE}  # Drive's base URL is accepted as well as the root


def test_a_folder_or_drive_not_shared_is_a_configuration_error(connect, google):
    with pytest.raises(ConfigurationError, match="share the folder with switchboard@support-kb"):
        list(connect(folders=["1NotSharedWithUs"]).load())
    with pytest.raises(ConfigurationError, match="add switchboard@support-kb.* to the shared drive"):
        list(connect(drives=["0ANoSuchDrive"]).slim())
    with pytest.raises(ConfigurationError, match="at least one"):
        connect()


# -- reading ------------------------------------------------------------------------------------

def test_load_reads_every_file_across_pages_and_subfolders_keeping_headings(google, kb, connect):
    docs, removed, failures = by_kind(connect(folders=[kb["root"]]).load())
    assert set(docs) == {kb[k] for k in IN_SCOPE} and not removed and not failures
    returns = docs[kb["returns"]]
    assert returns.text.startswith("# Returns") and "## Conditions" in returns.text
    assert "- Unused and in its box" in returns.text and "| Card | 5 days |" in returns.text
    assert returns.title == "Returns" and returns.source == "drive" and returns.language == "en"
    assert returns.url == f"https://docs.google.com/document/d/{kb['returns']}/edit?usp=drivesdk"
    assert returns.updated_at == "2026-01-05T09:00:02.000Z"  # the fake clock ticks once per change
    assert returns.metadata == {"owners": ["Ada Lovelace"], "mimeType": "application/vnd.google-apps.document",
                                "parents": [kb["root"]]}
    assert any("pageToken" in c.params for c in google.calls_to("files.list"))  # pages were crossed
    assert {c.params["mimeType"] for c in google.calls_to("files.export")} == {"text/markdown"}


def test_pdfs_and_text_files_are_read_and_other_types_ignored(kb, connect):
    docs, _, failures = by_kind(connect(folders=[kb["policies"]]).load())
    assert "Warranty claims are handled within ten days." in docs[kb["manual"]].text
    assert docs[kb["notes"]].text == "Our warehouse is closed on public holidays."
    assert docs[kb["faq"]].text.startswith("# FAQ\n\n## Gift cards")
    assert kb["image"] not in docs and not failures


def test_docs_are_converted_from_html_when_markdown_export_is_refused(google, kb, connect):
    google.markdown_export = False
    docs, _, failures = by_kind(connect(folders=[kb["root"]]).load())
    assert not failures
    text = docs[kb["returns"]].text
    assert text.startswith("# Returns") and "## Conditions" in text and "## Refunds by method" in text
    assert "- Unused and in its box\n- With the receipt\n  - or the order number" in text
    assert "| Method | Delay |\n| --- | --- |\n| Card | 5 days |" in text
    exports = [c.params["mimeType"] for c in google.calls_to("files.export")]
    assert exports.count("text/markdown") == 1  # refused once, HTML from then on


def test_docs_html_and_markdown_exports_are_cleaned():
    html = render_docs_html("Returns", RETURNS).replace(
        '<body class="c5 doc-content">', '<body><p class="c3 title"><span>Returns policy</span></p>'
        '<table><tr><td><p><span>Note: keep the box.</span></p></td></tr></table>'
        '<ol class="lst-kix_list_9-0 start" start="3"><li><span>Third</span></li><li><span>Fourth</span></li></ol>')
    text = html_to_markdown(html)
    assert text.startswith("# Returns policy\n\nNote: keep the box.\n\n3. Third\n4. Fourth\n\n# Returns")
    assert "<" not in text and "c1" not in text and "Returns</title>" not in text
    exported = "# Map\n\nSee ![][image1] below.\n\n[image1]: <data:image/png;base64,iVBORw0KGgo=>\n"
    assert clean_markdown(exported) == "# Map\n\nSee  below.\n\n"


def test_a_failing_export_is_a_failure_and_the_rest_still_come(google, kb, connect):
    google.fail(403, times=None, reason="exportSizeLimitExceeded", match=f"/files/{kb['returns']}/export")
    google.edit(kb["manual"], b"%PDF-1.4 not really a pdf")
    docs, _, failures = by_kind(connect(folders=[kb["root"]]).load())
    assert {f.document_id for f in failures} == {kb["returns"], kb["manual"]}
    assert set(docs) == {kb[k] for k in IN_SCOPE} - {kb["returns"], kb["manual"]}
    failure = next(f for f in failures if f.document_id == kb["returns"])
    assert failure.error == "Returns: exporting Returns: HTTP 403 This file is too large to be exported."


def test_slim_yields_exactly_the_ids_of_load(google, kb, connect):
    google.edit(kb["manual"], b"%PDF-1.4 broken")  # a failure is still an id load yields
    connector = connect(folders=[kb["root"]])
    loaded = {i.id if isinstance(i, Document) else i.document_id for i in connector.load()}
    contents = len(google.calls_to("files.export") + google.calls_to("files.get_media"))
    assert set(connector.slim()) == loaded == {kb[k] for k in IN_SCOPE}
    assert len(google.calls_to("files.export") + google.calls_to("files.get_media")) == contents  # ids only


# -- sharing --------------------------------------------------------------------------------------

def test_sharing_sets_the_visibility(google, kb, connect):
    google.share(kb["returns"], "anyone")
    google.share(kb["shipping"], "domain", domain="example.com")
    google.share(kb["billing"], "domain", domain="partner.example")
    google.share(kb["warranty"], "group", email="support@example.com")
    docs, _, _ = by_kind(connect(folders=[kb["root"]], domain="example.com").load())
    visibility = {name: docs[kb[name]].visibility for name in ("returns", "shipping", "billing", "warranty", "notes")}
    assert visibility == {"returns": "public", "shipping": "public", "billing": "internal", "warranty": "internal",
                          "notes": "internal"}
    docs, _, _ = by_kind(connect(folders=[kb["root"]]).load())  # no domain set: any domain-wide share
    assert docs[kb["billing"]].visibility == "public"
    google.files[kb["returns"]].can_share = False  # shared with us as a reader: its sharing is hidden
    docs, _, failures = by_kind(connect(folders=[kb["root"]]).load())
    assert docs[kb["returns"]].visibility == "internal" and not failures
    assert google.calls_to("permissions.list")[-1].status == 403


# -- incremental ------------------------------------------------------------------------------------

def test_poll_from_a_checkpoint_yields_changes_and_removals(google, kb, connect):
    connector = connect(folders=[kb["root"]])
    list(connector.load())
    checkpoint = connector.last_checkpoint
    google.edit(kb["returns"], RETURNS + "\n## Exchanges\n\nExchanges are free.\n")
    google.trash(kb["shipping"])
    google.delete(kb["warranty"])
    google.move(kb["faq"], kb["other"])
    new = google.add_doc("Delivery times", "# Delivery\n\nTwo to five days.\n", kb["archive"])
    google.add_file("photo.jpg", "image/jpeg", b"\xff\xd8", kb["archive"])
    google.share(kb["notes"], "anyone")
    docs, removed, failures = by_kind(connector.poll(0, checkpoint))
    assert set(docs) == {kb["returns"], new, kb["notes"]} and not failures
    assert removed == {kb["shipping"], kb["warranty"], kb["faq"]}
    assert "## Exchanges" in docs[kb["returns"]].text and docs[kb["notes"]].visibility == "public"
    assert not any("q" in c.params and "modifiedTime" in c.params["q"] for c in google.calls_to("files.list"))
    assert any("pageToken" in c.params and c.params["pageToken"] != json.loads(checkpoint)["tokens"]["user"]
               for c in google.calls_to("changes.list"))  # the feed crossed pages
    assert by_kind(connector.poll(0, connector.last_checkpoint)) == ({}, set(), [])


def test_poll_follows_folders_moved_in_out_and_trashed(google, kb, connect):
    imported = google.add_folder("Imported", kb["other"])
    moved_in = [google.add_doc(f"Imported {n}", f"# Imported {n}\n\nText {n}.\n", imported) for n in range(2)]
    connector = connect(folders=[kb["root"]])
    list(connector.load())
    google.edit(moved_in[1], "# Imported 1\n\nEdited before the move.\n")  # in the feed before its folder
    google.move(kb["archive"], kb["other"])
    google.move(imported, kb["root"])
    google.trash(kb["policies"])
    items = list(connector.poll(0, connector.last_checkpoint))
    last = {(i.id if isinstance(i, Document) else i.document_id): type(i).__name__ for i in items}
    assert last == {**{d: "Document" for d in moved_in},
                    **{kb[k]: "Removed" for k in ("terms", "warranty", "manual", "notes", "faq")}}
    google.edit(moved_in[0], "# Imported 0\n\nEdited.\n")
    google.edit(kb["terms"], "# Old terms\n\nStill elsewhere.\n")
    docs, removed, _ = by_kind(connector.poll(0, connector.last_checkpoint))
    # Out of scope now, so reported removed again: removing an id the index lacks is a no-op.
    assert set(docs) == {moved_in[0]} and removed == {kb["terms"]}


def test_poll_without_a_checkpoint_asks_for_files_modified_since(google, kb, connect):
    connector = connect(folders=[kb["root"]])
    since = google.clock
    google.edit(kb["warranty"], "# Warranty\n\nThree years now.\n")
    new = google.add_doc("Contact", "# Contact\n\nWrite to help@example.com.\n", kb["root"])
    google.trash(kb["shipping"])  # invisible to a time query: the next full pass prunes it
    docs, removed, _ = by_kind(connector.poll(since))
    assert set(docs) == {kb["warranty"], new} and not removed
    after = dt.datetime.fromtimestamp(since, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert any(f"modifiedTime > '{after}'" in c.params.get("q", "")
               for c in google.calls_to("files.list"))
    assert json.loads(connector.last_checkpoint)["tokens"]["user"]  # the next poll can use the feed


def test_a_shared_drive_is_read_whole_and_polled(google, kb, connect):
    drive = google.add_drive("Support")
    sub = google.add_folder("Guides", drive)
    a = google.add_doc("Drive A", "# A\n\nAbout returns.\n", drive)
    b = google.add_doc("Drive B", "# B\n\nAbout billing.\n", sub)
    c = google.add_file("drive-c.pdf", "application/pdf", pdf_bytes("Spare parts ship from Ghent."), sub)
    connector = connect(drives=[drive])
    docs, _, failures = by_kind(connector.load())
    assert set(docs) == {a, b, c} and not failures
    assert {d.visibility for d in docs.values()} == {"internal"} and docs[a].metadata["owners"] == []
    listing = google.calls_to("files.list")[0].params
    assert (listing["corpora"], listing["driveId"], listing["includeItemsFromAllDrives"]) == ("drive", drive, "true")
    assert len(google.calls_to("permissions.list")) == 3  # not listed for shared-drive items
    assert set(connector.slim()) == {a, b, c}
    google.share(a, "anyone")
    google.trash(b)
    google.move(c, kb["root"])
    docs, removed, _ = by_kind(connector.poll(0, connector.last_checkpoint))
    assert set(docs) == {a} and docs[a].visibility == "public" and removed == {b, c}


# -- failures -------------------------------------------------------------------------------------------

def test_rate_limits_are_retried_honouring_retry_after(google, kb, connect, waits):
    google.fail(429, times=2, retry_after=7)
    google.fail(403, times=1, reason="userRateLimitExceeded", match="/export")
    docs, _, failures = by_kind(connect(folders=[kb["root"]]).load())
    assert len(docs) == len(IN_SCOPE) and not failures
    assert waits == [7, 7, 1.0]  # Retry-After honoured; a 403 rate limit backs off from 1 s


def test_a_persistent_503_is_a_connector_error_after_bounded_attempts(google, kb, connect, waits):
    connector = connect(folders=[kb["root"]])
    list(connector.slim())
    google.fail(503, times=None, match="/files")
    before = len(google.calls_to("files.get"))
    with pytest.raises(ConnectorError, match="HTTP 503 .* after 4 attempts") as caught:
        list(connector.load())
    assert not isinstance(caught.value, CredentialError)
    assert len(google.calls_to("files.get")) - before == 4  # one retry policy: ours
    assert waits == [1.0, 2.0, 4.0]


# -- ingestion ----------------------------------------------------------------------------------------------

def test_ingest_then_trash_upstream_removes_the_document(google, kb, connect, embedder, tmp_path):
    index = Index(tmp_path / "index.sqlite3")
    try:
        connector, ingestor = connect(folders=[kb["root"]]), Ingestor(index, embedder)
        report = ingestor.ingest(connector)
        assert report.added == len(IN_SCOPE) and not report.failures
        hits = Retriever(index, embedder).search("how many days to return an item")
        assert hits[0].stored.chunk.document_id == kb["returns"]
        google.trash(kb["returns"])
        report = ingestor.ingest(connector)
        assert report.removed == 1 and report.unchanged == len(IN_SCOPE) - 1
        assert kb["returns"] not in index.document_ids("drive")
        assert index.source("drive").status == "success"
        google.trash(kb["notes"])  # and through the changes feed, without a full pass
        google.edit(kb["billing"], "# Billing\n\n## Invoices\n\nInvoices are sent by post.\n")
        report = ingestor.update(connector, 0, checkpoint=connector.last_checkpoint)
        assert (report.removed, report.updated, report.unchanged) == (1, 1, 0)
        assert kb["notes"] not in index.document_ids("drive")
    finally:
        index.close()


def test_generate_builds_realistic_docs(google, connect):
    root = google.generate(7, per_folder=3)
    docs, _, failures = by_kind(connect(folders=[root]).load())
    assert len(docs) == 7 and not failures
    for doc in docs.values():
        assert doc.text.startswith("# ") and "## Steps" in doc.text and "| Country | Delay | Fee |" in doc.text
        assert "  - It contains the tracking link" in doc.text
