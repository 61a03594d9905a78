"""The Notion connector driven through the real notion-client against the fake Notion API."""
from __future__ import annotations

import httpx
import pytest

from knowledge.connectors.errors import ConfigurationError, ConnectorError, CredentialError
from knowledge.connectors.notion import NotionConnector, Pacer
from knowledge.connectors.notion_blocks import BlockError, page_title, properties, to_markdown
from knowledge.connectors.retry import Retry
from knowledge.documents import Document, Failure, Removed
from knowledge.index import Index
from knowledge.ingest import Ingestor
from tests.fakes.notion_api import (FakeNotion, bullet, callout, code, divider, equation, heading, image,
                                    malformed, mention_user, numbered, paragraph, quote, rich, table, todo,
                                    toggle)
from tests.fakes.server import serve

HELP_CENTRE = """\
# Returns

Read [the policy](https://help.example/returns) **before** sending anything back.

- Unused items
  - with their labels
    1. in the original box
- Sale items
1. Open your account
2. Choose the order
- [x] Label printed
- [ ] Parcel dropped off

Can I return a gift?

Yes, with the gift receipt.

> 💡 Refunds take five to ten business days.
>
> Ask @Anna Smith if a refund is late.

```python
refund(order_id)
```

| Country | Days |
| --- | --- |
| Belgium | 3 \\| 5 |

---

E = mc^2

> Customers love fast refunds.

Shipping FAQ

Tickets"""


@pytest.fixture
def fake():
    return FakeNotion(page_size=3)  # small pages: every listing below crosses pagination


class Switch:
    """An ASGI app forwarding to the current test's fake: one server for the module, not one per test."""

    app = None

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def server():
    switch = Switch()
    with serve(switch) as url:
        yield switch, url


@pytest.fixture
def url(fake, server):
    switch, url = server
    switch.app = fake.app()
    return url


@pytest.fixture
def workspace(fake):
    """A help centre page with a child page and a tickets database, plus generated pages."""
    home = fake.add_page("Help centre", [
        heading(1, "Returns"),
        paragraph([rich("Read "), rich("the policy", href="https://help.example/returns"), rich(" "),
                   rich("before", bold=True), rich(" sending anything back.")]),
        bullet("Unused items", bullet("with their labels", numbered("in the original box"))),
        bullet("Sale items"), numbered("Open your account"), numbered("Choose the order"),
        todo("Label printed", checked=True), todo("Parcel dropped off"),
        toggle("Can I return a gift?", paragraph("Yes, with the gift receipt.")),
        callout("Refunds take five to ten business days.",
                paragraph([rich("Ask "), mention_user("Anna Smith"), rich(" if a refund is late.")])),
        code("refund(order_id)"), table(["Country", "Days"], ["Belgium", "3 | 5"]), divider(),
        equation("E = mc^2"), image("https://help.example/box.png"), quote("Customers love fast refunds."),
    ])
    faq = fake.add_page("Shipping FAQ", [heading(2, "Belgium"), paragraph("Parcels reach Belgium in three days.")],
                        parent=home)
    tickets = fake.add_database("Tickets", {"Name": "title", "Status": "status", "Tags": "multi_select",
                                            "Owner": "people", "Due": "date", "Urgent": "checkbox",
                                            "Parcels": "number", "Tracking": "url"}, parent=home)
    rows = [fake.add_row(tickets, {"Name": f"Late parcel {n}", "Status": "Open", "Tags": ["shipping", "belgium"],
                                   "Owner": ["Anna Smith"], "Due": "2026-02-01", "Urgent": n == 1, "Parcels": n,
                                   "Tracking": f"https://track.example/{n}"},
                           [paragraph(f"The customer waits for parcel {n}.")]) for n in range(1, 5)]
    others = fake.generate(4)
    return {"home": home, "faq": faq, "tickets": tickets, "rows": rows, "others": others}


def connect(fake: FakeNotion, url: str, **options) -> NotionConnector:
    options.setdefault("min_interval", 0)
    options.setdefault("sleep", _no_sleep)
    return NotionConnector("wiki", token=fake.token, base_url=url, **options)


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected sleep of {seconds}s")


def documents(items) -> dict[str, Document]:
    items = list(items)
    assert not [i for i in items if not isinstance(i, Document)]
    return {d.id: d for d in items}


# ---- full load ------------------------------------------------------------------------------------

def test_load_reads_every_page_and_row_across_pagination(fake, url, workspace):
    docs = documents(connect(fake, url).load())

    ids = {workspace["home"], workspace["faq"], *workspace["rows"], *workspace["others"]}
    assert set(docs) == ids
    assert docs[workspace["home"]].text == HELP_CENTRE
    assert docs[workspace["faq"]].text == "## Belgium\n\nParcels reach Belgium in three days."
    # every listing was paginated with the cursor the previous answer gave
    page_search = [c for c in fake.calls_to("/v1/search") if c.body["filter"]["value"] == "page"]
    for calls in (page_search, fake.calls_to("/query"), fake.calls_to(f"/v1/blocks/{workspace['home']}/children")):
        cursors = [c.body.get("start_cursor") or c.query.get("start_cursor") for c in calls]
        assert len(cursors) > 1 and cursors[0] is None and all(cursors[1:]), calls[0].path
    assert all(c.headers["notion-version"] == "2025-09-03" for c in fake.calls)


def test_documents_carry_title_url_time_language_and_metadata(fake, url, workspace):
    docs = documents(connect(fake, url, visibility="internal").load())

    home = docs[workspace["home"]]
    assert home.title == "Help centre" and home.source == "wiki" and home.visibility == "internal"
    assert home.url == f"https://www.notion.so/Help-centre-{workspace['home'].replace('-', '')}"
    assert home.updated_at == "2026-01-01T12:00:00.000Z" and home.language == "en"
    assert home.metadata["parent"] == {"type": "workspace", "workspace": True}
    assert home.metadata["created_by"] == home.metadata["last_edited_by"] == fake.user
    faq = docs[workspace["faq"]]
    assert faq.metadata["parent"] == {"type": "page_id", "page_id": workspace["home"]}


def test_a_database_row_starts_with_its_properties(fake, url, workspace):
    row = documents(connect(fake, url).load())[workspace["rows"][0]]

    assert row.title == "Late parcel 1"
    assert row.text == ("Name: Late parcel 1\nStatus: Open\nTags: shipping, belgium\nOwner: Anna Smith\n"
                        "Due: 2026-02-01\nUrgent: Yes\nParcels: 1\nTracking: https://track.example/1\n\n"
                        "The customer waits for parcel 1.")
    assert row.metadata["database_id"] == workspace["tickets"]
    assert row.metadata["data_source_id"] == fake.data_source_of(workspace["tickets"])
    assert row.metadata["properties"]["Status"] == "Open"


def test_rows_are_found_by_querying_their_database_even_when_search_lags(fake, url, workspace):
    fake.unindexed.update(workspace["rows"][:2])

    ids = {d.id for d in connect(fake, url).load()}
    assert set(workspace["rows"]) <= ids
    assert fake.calls_to(f"/v1/data_sources/{fake.data_source_of(workspace['tickets'])}/query")


def test_slim_yields_exactly_the_ids_of_load_without_reading_blocks(fake, url, workspace):
    fake.archive(workspace["others"][0])
    connector = connect(fake, url)
    loaded = {d.id for d in connector.load()}

    fake.calls.clear()
    assert set(connector.slim()) == loaded
    assert fake.calls and not fake.calls_to("/children")


def test_archived_and_trashed_pages_are_not_loaded(fake, url, workspace):
    fake.archive(workspace["faq"])
    fake.trash(workspace["rows"][0])

    ids = {d.id for d in connect(fake, url).load()}
    assert workspace["faq"] not in ids and workspace["rows"][0] not in ids
    assert workspace["home"] in ids and workspace["rows"][1] in ids


# ---- roots ----------------------------------------------------------------------------------------

def test_roots_restrict_the_scope_to_their_subtrees(fake, url, workspace):
    elsewhere = fake.add_page("Elsewhere", [paragraph("Not under the help centre.")])
    elsewhere_child = fake.add_page("Elsewhere too", [], parent=elsewhere)
    nested = fake.add_page("Nested", [paragraph("Two levels down.")], parent=workspace["faq"])
    home_url = f"https://www.notion.so/acme/Help-centre-{workspace['home'].replace('-', '')}"
    connector = connect(fake, url, roots=[home_url])

    ids = {d.id for d in connector.load()}
    assert ids == {workspace["home"], workspace["faq"], nested, *workspace["rows"]}
    assert not {elsewhere, elsewhere_child} & ids and set(connector.slim()) == ids
    assert connector.config()["roots"] == [workspace["home"]]


def test_a_database_root_yields_its_rows(fake, url, workspace):
    connector = connect(fake, url, roots=[workspace["tickets"]])

    assert {d.id for d in connector.load()} == set(workspace["rows"])


def test_a_root_not_shared_with_the_integration_is_a_configuration_error(fake, url, workspace):
    fake.unshare(workspace["faq"])

    with pytest.raises(ConfigurationError, match="share the page with the integration"):
        list(connect(fake, url, roots=[workspace["faq"]]).load())
    with pytest.raises(ConfigurationError, match="not a Notion page"):
        connect(fake, url, roots=["help centre"])


# ---- poll -----------------------------------------------------------------------------------------

def test_poll_yields_edited_pages_and_removals_only(fake, url, workspace):
    fake.advance(3600)
    since = fake.now
    fake.advance(600)
    fake.edit(workspace["faq"], blocks=[paragraph("Parcels reach Belgium in two days now.")])
    block = fake.children[workspace["others"][0]][0]
    fake.edit_block(block, "A block-level edit bumps the page.")
    fake.edit(workspace["rows"][1], values={"Status": "Closed"})
    fake.archive(workspace["others"][1])
    fake.trash(workspace["rows"][2])
    fake.calls.clear()

    items = list(connect(fake, url).poll(since))

    changed = {i.id: i for i in items if isinstance(i, Document)}
    assert set(changed) == {workspace["faq"], workspace["others"][0], workspace["rows"][1]}
    assert changed[workspace["faq"]].text == "Parcels reach Belgium in two days now."
    assert changed[workspace["others"][0]].text.startswith("A block-level edit bumps the page.")
    assert "Status: Closed" in changed[workspace["rows"][1]].text
    assert {i.document_id for i in items if isinstance(i, Removed)} == {workspace["others"][1], workspace["rows"][2]}
    # newest first: the search stopped at the first unchanged page instead of listing them all
    searches = fake.calls_to("/v1/search")
    assert [c.body["sort"] for c in searches] == [{"timestamp": "last_edited_time", "direction": "descending"}] * 2


def test_poll_keeps_a_margin_for_minute_rounded_timestamps(fake, url, workspace):
    fake.advance(3600 + 50 - fake.now % 60)  # hh:mm:50, which Notion reports as hh:mm:00
    fake.edit(workspace["faq"], title="Shipping questions")
    since = fake.now - 20  # an earlier poll ran at hh:mm:30, after the edit's reported time

    items = list(connect(fake, url).poll(since))
    assert [i.id for i in items] == [workspace["faq"]] and items[0].title == "Shipping questions"


def test_poll_with_roots_ignores_edits_elsewhere(fake, url, workspace):
    elsewhere = fake.add_page("Elsewhere", [])
    fake.advance(3600)
    since = fake.now
    fake.edit(elsewhere, title="Elsewhere, edited")
    fake.edit(workspace["faq"], title="Shipping questions")

    assert [i.id for i in connect(fake, url, roots=[workspace["home"]]).poll(since)] == [workspace["faq"]]


# ---- failures -------------------------------------------------------------------------------------

def test_a_malformed_block_is_a_failure_and_the_batch_goes_on(fake, url, workspace):
    broken = fake.add_page("Broken", [paragraph("Fine so far."), malformed()])

    items = list(connect(fake, url).load())

    failures = [i for i in items if isinstance(i, Failure)]
    assert [f.document_id for f in failures] == [broken]
    assert "paragraph block" in failures[0].error and "rich_text" in failures[0].error
    assert {i.id for i in items if isinstance(i, Document)} >= {workspace["home"], *workspace["rows"]}
    assert broken in set(connect(fake, url).slim())  # a failed page is kept, not pruned


def test_rate_limit_waits_for_retry_after_then_succeeds(fake, url, workspace):
    fake.fail(times=2, status=429, retry_after=7)
    waits: list[float] = []
    connector = connect(fake, url, sleep=waits.append)

    assert len(list(connector.load())) == 10
    assert waits == [7.0, 7.0] and connector.retry.waited == [7.0, 7.0]
    assert [c.status for c in fake.calls[:3]] == [429, 429, 200]


@pytest.mark.parametrize("status", [500, 503, 504])
def test_transient_server_errors_are_retried(fake, url, workspace, status):
    fake.fail(times=1, status=status, path="/children")
    waits: list[float] = []

    assert len(list(connect(fake, url, sleep=waits.append).load())) == 10
    assert waits == [1.0]


def test_a_persistent_502_gives_up_after_bounded_attempts(fake, url, workspace):
    fake.fail(times=100, status=502, path="/children")
    waits: list[float] = []
    connector = connect(fake, url, retry=Retry(attempts=4, sleep=waits.append))

    with pytest.raises(ConnectorError, match="HTTP 502.*try again later") as caught:
        list(connector.load())  # the whole pass stops: not one Failure per page while Notion is down
    assert not isinstance(caught.value, CredentialError)
    assert len(fake.calls_to("/children")) == 4 and waits == [1.0, 2.0, 4.0]


def test_a_revoked_token_is_a_credential_error_naming_the_fix(fake, url, workspace):
    fake.revoke()

    with pytest.raises(CredentialError) as caught:
        list(connect(fake, url).load())
    message = str(caught.value)
    assert "reconnect the integration" in message and "NOTION_TOKEN" in message
    assert fake.token not in message and fake.token not in repr(caught.value)
    assert len(fake.calls) == 1  # never retried


def test_a_missing_capability_is_a_credential_error(fake, url, workspace):
    fake.fail(times=1, status=403, path="/children")

    with pytest.raises(CredentialError, match="'Read content' capability"):
        list(connect(fake, url).load())


def test_an_unreachable_api_is_a_connector_error(fake, workspace):
    waits: list[float] = []
    connector = NotionConnector("wiki", token=fake.token, base_url="http://127.0.0.1:9", min_interval=0,
                                retry=Retry(attempts=2, sleep=waits.append))

    with pytest.raises(ConnectorError, match="unreachable"):
        list(connector.load())
    assert waits == [1.0]


# ---- pacing ---------------------------------------------------------------------------------------

class FakeClock:
    """Time that moves only when slept (or advanced), so waits are computed, never waited."""

    def __init__(self) -> None:
        self.now, self.slept = 1000.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_requests_are_paced_to_the_rate_limit(fake, url, workspace):
    clock = FakeClock()
    connector = connect(fake, url, min_interval=0.34, clock=clock, sleep=clock.sleep)

    list(connector.slim())

    assert len(clock.slept) == len(fake.calls) - 1
    assert clock.slept == pytest.approx([0.34] * (len(fake.calls) - 1))


def test_the_pacer_waits_only_for_what_is_left_of_the_interval():
    clock = FakeClock()
    pacer = Pacer(0.34, clock, clock.sleep)

    pacer.wait()  # first request: no wait
    clock.now += 0.1  # the request took 0.1 s
    pacer.wait()
    clock.now += 0.5  # slower than the interval: no wait
    pacer.wait()
    assert clock.slept == pytest.approx([0.24]) and pacer.waited == clock.slept


def test_a_429_wait_and_pacing_do_not_add_up(fake, url, workspace):
    clock = FakeClock()
    fake.fail(times=1, status=429, retry_after=2)
    connector = connect(fake, url, min_interval=0.34, clock=clock, sleep=clock.sleep)

    list(connector.slim())
    assert clock.slept[0] == 2 and clock.slept[1:] == pytest.approx([0.34] * (len(fake.calls) - 2))


# ---- config and the fake's protocol ---------------------------------------------------------------

def test_config_holds_settings_but_never_the_token(fake, url):
    connector = connect(fake, url, roots=["0f1e2d3c4b5a69788796a5b4c3d2e1f0"])

    assert connector.kind == "notion"
    assert connector.config() == {"base_url": url, "roots": ["0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"],
                                  "visibility": "public", "min_interval": 0}
    assert fake.token not in repr(connector.config())


def test_the_fake_checks_token_and_version_headers(fake, url):
    search = f"{url}/v1/search"
    no_version = httpx.post(search, json={}, headers={"Authorization": f"Bearer {fake.token}"})
    bad_token = httpx.post(search, json={}, headers={"Authorization": "Bearer nope", "Notion-Version": "2025-09-03"})

    assert (no_version.status_code, no_version.json()["code"]) == (400, "missing_version")
    assert bad_token.json() == {**bad_token.json(), "object": "error", "status": 401, "code": "unauthorized"}


# ---- conversion of recorded block JSON --------------------------------------------------------------

def _text(content: str, **annotations) -> dict:
    return {"type": "text", "text": {"content": content, "link": None},
            "annotations": {"bold": False, "italic": False, "strikethrough": False, "underline": False,
                            "code": False, "color": "default", **annotations},
            "plain_text": content, "href": None}


def _block(block_id: str, kind: str, payload: dict, has_children: bool = False) -> dict:
    return {"object": "block", "id": block_id, "parent": {"type": "page_id", "page_id": "p1"},
            "created_time": "2025-11-03T09:14:00.000Z", "last_edited_time": "2025-11-03T09:15:00.000Z",
            "created_by": {"object": "user", "id": "u1"}, "last_edited_by": {"object": "user", "id": "u1"},
            "has_children": has_children, "archived": False, "in_trash": False, "type": kind, kind: payload}


def _markdown(blocks: list[dict], children: dict[str, list[dict]] | None = None) -> str:
    return to_markdown(blocks, lambda block_id: (children or {})[block_id])


def test_rich_text_keeps_bold_code_links_mentions_and_equations():
    link = {**_text("the form"), "text": {"content": "the form", "link": {"url": "https://x.example/f"}},
            "href": "https://x.example/f"}
    page_mention = {"type": "mention", "mention": {"type": "page", "page": {"id": "p2"}},
                    "annotations": _text("")["annotations"], "plain_text": "Returns",
                    "href": "https://www.notion.so/p2"}
    inline_equation = {"type": "equation", "equation": {"expression": "x^2"},
                       "annotations": _text("")["annotations"], "plain_text": "x^2", "href": None}
    block = _block("b1", "paragraph", {"rich_text": [_text("Fill in "), link, _text(" then run "),
                                                       _text("sync", code=True), _text(" — see "), page_mention,
                                                       _text(", "), inline_equation, _text(" and "),
                                                       _text("done ", bold=True)], "color": "default"})

    assert _markdown([block]) == ("Fill in [the form](https://x.example/f) then run `sync` — see "
                                  "[Returns](https://www.notion.so/p2), x^2 and **done**")


def test_numbered_lists_restart_and_honour_their_start_index():
    item = lambda i, text, **extra: _block(i, "numbered_list_item", {"rich_text": [_text(text)], **extra})  # noqa: E731
    blocks = [item("n1", "First", list_start_index=3), item("n2", "Second"),
              _block("p", "paragraph", {"rich_text": [_text("Break")]}), item("n3", "Again", has_children=True)]
    blocks[3]["has_children"] = True
    children = {"n3": [_block("c", "bulleted_list_item", {"rich_text": [_text("Sub")]})]}

    assert _markdown(blocks, children) == "3. First\n4. Second\n\nBreak\n\n1. Again\n   - Sub"


def test_toggleable_headings_columns_and_synced_blocks_show_their_children():
    blocks = [_block("h", "heading_3", {"rich_text": [_text("Hours")], "is_toggleable": True}, True),
              _block("cl", "column_list", {}, True)]
    children = {"h": [_block("p1", "paragraph", {"rich_text": [_text("9 to 5.")]})],
                "cl": [_block("c1", "column", {}, True), _block("c2", "column", {}, True)],
                "c1": [_block("p2", "paragraph", {"rich_text": [_text("Left")]})],
                "c2": [_block("s", "synced_block", {"synced_from": {"type": "block_id", "block_id": "o"}}, True)],
                "s": [_block("p3", "paragraph", {"rich_text": [_text("Right")]})]}

    assert _markdown(blocks, children) == "### Hours\n\n9 to 5.\n\nLeft\n\nRight"


def test_tables_without_header_unsupported_blocks_and_child_pages():
    row = lambda i, *cells: _block(i, "table_row", {"cells": [[_text(c)] for c in cells]})  # noqa: E731
    blocks = [_block("t", "table", {"table_width": 2, "has_column_header": False, "has_row_header": True}, True),
              _block("i", "image", {"type": "file", "file": {"url": "https://s3/x.png"}, "caption": []}),
              _block("toc", "table_of_contents", {"color": "default"}),
              _block("cp", "child_page", {"title": "Shipping FAQ"}, has_children=True),
              _block("cd", "child_database", {"title": "Tickets"}),
              _block("bm", "bookmark", {"caption": [_text("Carrier site")], "url": "https://carrier.example"}),
              _block("code", "code", {"caption": [], "rich_text": [_text("a ``` b")], "language": "plain text"})]
    children = {"t": [row("r1", "Monday", "9-17"), row("r2", "Sunday")]}  # child_page children never listed

    assert _markdown(blocks, children) == ("| Monday | 9-17 |\n| --- | --- |\n| Sunday |  |\n\nShipping FAQ\n\n"
                                           "Tickets\n\n[Carrier site](https://carrier.example)\n\n````\na ``` b\n````")


def test_a_block_without_its_payload_is_a_block_error():
    with pytest.raises(BlockError, match="to_do block b9"):
        _markdown([_block("b9", "to_do", {"checked": True})])
    with pytest.raises(BlockError):
        _markdown([{"object": "block", "id": "b8", "type": "quote", "has_children": False}])


def test_properties_of_every_kind_become_text():
    page = {"object": "page", "id": "r1", "properties": {
        "Status": {"id": "a", "type": "status", "status": {"id": "s", "name": "In progress", "color": "blue"}},
        "Task": {"id": "title", "type": "title", "title": [_text("Call "), _text("back", bold=True)]},
        "Notes": {"id": "b", "type": "rich_text", "rich_text": []},
        "Estimate": {"id": "c", "type": "number", "number": 2.5},
        "When": {"id": "d", "type": "date", "date": {"start": "2026-03-01", "end": "2026-03-04", "time_zone": None}},
        "Score": {"id": "e", "type": "formula", "formula": {"type": "number", "number": 12.0}},
        "Ref": {"id": "f", "type": "unique_id", "unique_id": {"prefix": "SUP", "number": 42}},
        "Mail": {"id": "g", "type": "email", "email": "ana@example.com"},
        "Phone": {"id": "h", "type": "phone_number", "phone_number": None},
        "Linked": {"id": "i", "type": "relation", "relation": [{"id": "x"}], "has_more": False},
        "Edited": {"id": "j", "type": "last_edited_time", "last_edited_time": "2026-01-01T00:00:00.000Z"},
        "Owner": {"id": "k", "type": "people", "people": [{"object": "user", "id": "u1", "name": "Ana"},
                                                          {"object": "user", "id": "u2"}]},
    }}

    assert page_title(page) == "Call back"
    assert properties(page) == {"Task": "Call back", "Status": "In progress", "Estimate": "2.5",
                                "When": "2026-03-01 → 2026-03-04", "Score": "12", "Ref": "SUP-42",
                                "Mail": "ana@example.com", "Owner": "Ana"}


# ---- ingestion end to end -------------------------------------------------------------------------

def test_ingest_then_archiving_upstream_removes_the_page(fake, url, embedder, tmp_path):
    home = fake.add_page("Returns", [heading(2, "Refunds"), paragraph("Refunds take five business days.")])
    faq = fake.add_page("Shipping FAQ", [paragraph("Parcels reach Belgium in three days.")], parent=home)
    tickets = fake.add_database("Tickets", {"Name": "title", "Status": "select"}, parent=home)
    row = fake.add_row(tickets, {"Name": "Late parcel", "Status": "Open"})
    index = Index(tmp_path / "index.sqlite3")
    try:
        ingestor = Ingestor(index, embedder)
        report = ingestor.ingest(connect(fake, url))
        assert report.added == 3 and not report.failures
        assert index.document_ids("wiki") == {home, faq, row}

        fake.advance(600)
        fake.archive(faq)
        report = ingestor.ingest(connect(fake, url))
        assert (report.removed, report.unchanged) == (1, 2)
        assert index.document_ids("wiki") == {home, row}
    finally:
        index.close()
