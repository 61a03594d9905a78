"""The Knowledge page's forms over real HTTP, a real index and the real embedder: a Notion
source added in the console syncs from the fake Notion API (the real notion-client) and is
answered by the web chat; a folder source likewise; bad settings are refused with the
reason and add nothing; a product catalog uploaded as a CSV (multipart, like a browser
sends it) is answerable at once; a bad catalog says what is wrong and changes nothing."""
from __future__ import annotations

import time
import uuid

import httpx
import pytest

from adapters.app import create_app
from tests.admin.conftest import Console
from tests.admin.test_knowledge import WAIT, status_of
from tests.adapters.test_web import chat, open_runtime
from tests.fakes.notion_api import FakeNotion, paragraph
from tests.fakes.server import serve

CATALOG = ("id,name,price,currency,stock,description,url\n"
           "ZX900,Comet Pendant Lamp,349.00,EUR,3,\"Copper pendant lamp with a 45 cm dome, dimmable.\","
           "https://maison-lumiere.example/p/ZX900\n")


def settled(admin, source: str) -> str:
    """The source's status once its sync has ended (bounded wait)."""
    deadline = time.monotonic() + WAIT
    while (status := status_of(admin.page("/admin/knowledge").text, source)) in ("processing", "new"):
        assert time.monotonic() < deadline, f"source {source} did not finish syncing in time"
        time.sleep(0.2)  # polling a condition under a bounded deadline
    return status


def ask(console, question: str) -> dict:
    with httpx.Client(base_url=console.url, timeout=60) as customer:
        return chat(customer, uuid.uuid4().hex, question)[-1][1]


@pytest.fixture
def notion_console(tmp_path, sample_index_path, embedder):
    """The console with a fake Notion API serving one page, and the integration's token in
    the server's environment (where the console's sources read their secrets)."""
    fake = FakeNotion()
    fake.add_page("Rental of lamps for events", [paragraph(
        "We rent lamps for weddings and events: 15 EUR per lamp per weekend, delivery included.")])
    with serve(fake.app()) as notion_url:
        runtime = open_runtime(tmp_path, sample_index_path, embedder, NOTION_TOKEN=fake.token)
        app = create_app(runtime)
        with serve(app) as url:
            yield Console(url, runtime, app), notion_url


def test_a_notion_source_added_in_the_console_is_synced_and_answered(notion_console):
    console, notion_url = notion_console
    admin = console.signed_in("admin")
    form = admin.page("/admin/knowledge/add").text
    assert 'name="notion.roots"' in form and 'name="confluence.spaces"' in form and "<select" in form
    added = admin.post("/admin/knowledge/add", {"name": "events", "kind": "notion", "notion.base_url": notion_url})
    assert added.status_code == 303 and added.headers["location"] == "/admin/knowledge?notice=added"
    assert settled(admin, "events") == "success"
    assert console.runtime.index.source("events").documents == 1
    reply = ask(console, "Do you rent lamps for a wedding?")
    assert reply["answered"] and "15 EUR" in reply["answer"]
    assert "source added" in admin.page("/admin/audit").text


def test_the_knowledge_page_reloads_itself_while_a_source_syncs(console):
    admin = console.signed_in("admin")
    assert 'http-equiv="refresh"' not in admin.page("/admin/knowledge").text
    console.runtime.index.set_status("faq", "processing")  # as a worker's sync marks it
    assert '<meta http-equiv="refresh" content="2">' in admin.page("/admin/knowledge").text
    console.runtime.index.set_status("faq", "success")
    assert 'http-equiv="refresh"' not in admin.page("/admin/knowledge").text


def test_a_folder_source_is_added_and_bad_settings_are_refused(console, tmp_path):
    admin = console.signed_in("admin")
    folder = tmp_path / "care"
    folder.mkdir()
    (folder / "care.md").write_text("# Lamp care\n\nDust brass lamp bases with a dry microfibre cloth only.\n")
    before = [s.name for s in console.runtime.index.sources()]
    refused = {
        "A source needs a name": {"name": "", "kind": "folder", "folder.path": str(folder)},
        "no such file or folder": {"name": "care", "kind": "folder", "folder.path": str(tmp_path / "nowhere")},
        "a folder source needs path": {"name": "care", "kind": "folder"},
        "a confluence source needs spaces": {"name": "wiki", "kind": "confluence",
                                             "confluence.url": "https://acme.atlassian.net"},
        "a gdrive source needs a folder or a shared drive": {"name": "drive", "kind": "gdrive"},
        "interval must be a whole number": {"name": "care", "kind": "folder", "folder.path": str(folder),
                                            "interval": "5"},
        "exists already": {"name": "faq", "kind": "folder", "folder.path": str(folder)},
        "Choose a kind": {"name": "care", "kind": "ftp"},
    }
    for reason, fields in refused.items():
        response = admin.post("/admin/knowledge/add", fields)
        assert response.status_code == 400 and reason in response.text, (reason, response.text[-600:])
        assert 'role="alert"' in response.text
    assert [s.name for s in console.runtime.index.sources()] == before
    added = admin.post("/admin/knowledge/add", {"name": "care", "kind": "folder", "folder.path": str(folder)})
    assert added.status_code == 303
    assert settled(admin, "care") == "success"
    reply = ask(console, "How do I clean a brass lamp base?")
    assert reply["answered"] and "microfibre" in reply["answer"]


def test_an_uploaded_catalog_is_answerable_at_once(console):
    admin = console.signed_in("admin")
    assert 'enctype="multipart/form-data"' in admin.page("/admin/knowledge/catalog").text
    started = time.monotonic()
    uploaded = admin.post("/admin/knowledge/catalog", files={"catalog": ("offers.csv", CATALOG.encode(), "text/csv")})
    print(f"catalog uploaded and indexed in {time.monotonic() - started:.2f} s")
    assert uploaded.status_code == 303 and uploaded.headers["location"] == "/admin/knowledge?notice=catalog&products=1"
    assert "Catalog indexed. 1 product." in admin.page(uploaded.headers["location"]).text
    stored = console.runtime.settings.home / "knowledge" / "catalog" / "offers.csv"
    assert stored.read_text() == CATALOG
    reply = ask(console, "How much is the Comet Pendant Lamp?")
    assert reply["answered"] and "349.00" in reply["answer"]
    assert "catalog uploaded" in admin.page("/admin/audit").text


@pytest.mark.parametrize("content, reason", [
    (b"sku,title\nA1,Lamp\n", "a catalog needs the columns id, name and price (missing: id, name, price)"),
    (b"id,name,price\n", "the file has no product rows"),
    (b"", "the file has no product rows"),
    (b"\xff\xfe garbage", "not a readable CSV file (not valid UTF-8 text"),
    (b"PK\x03\x04\x00\x00 a zip file", "not a readable CSV file (binary file"),
])
def test_a_bad_catalog_says_what_is_wrong_and_changes_nothing(console, content, reason):
    admin = console.signed_in("admin")
    documents = console.runtime.index.source("catalog").documents
    response = admin.post("/admin/knowledge/catalog", files={"catalog": ("offers.csv", content, "text/csv")})
    assert response.status_code == 400 and reason in response.text
    assert console.runtime.index.source("catalog").documents == documents
    assert not (console.runtime.settings.home / "knowledge" / "catalog" / "offers.csv").exists()


def test_the_forms_need_an_admin_a_csrf_token_and_a_file_of_bounded_size(console):
    admin, agent = console.signed_in("admin"), console.signed_in("agent")
    for path in ("/admin/knowledge/add", "/admin/knowledge/catalog"):
        assert agent.http.get(path).status_code == 403
        assert agent.post(path, {"name": "x", "kind": "notion"}).status_code == 403
        assert admin.http.post(path, data={"name": "x", "kind": "notion"}).status_code == 403  # no CSRF token
        assert console.client().get(path).status_code == 303  # not signed in: to the sign-in page
    assert admin.post("/admin/knowledge/catalog").status_code == 400  # no file
    too_big = admin.post("/admin/knowledge/catalog",
                         files={"catalog": ("offers.csv", b"id,name,price\n" + b"x" * 5_100_000, "text/csv")})
    assert too_big.status_code in (400, 413) and "5 MB" in too_big.text
    assert console.runtime.index.source("x") is None


def test_settings_from_the_form_become_a_sources_settings():
    from adapters.admin.source_forms import settings_from

    got = settings_from("confluence", {"confluence.url": " https://acme.atlassian.net ", "confluence.spaces": "DOC, HELP  KB",
                                       "confluence.datacenter": "on", "token_env": "WIKI_TOKEN", "notion.roots": "ignored"})
    assert got == {"url": "https://acme.atlassian.net", "spaces": ["DOC", "HELP", "KB"], "cloud": False,
                   "attachments": False, "token_env": "WIKI_TOKEN"}
