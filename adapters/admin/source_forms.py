"""The Knowledge page's two forms (admins): **add a source** (a folder, Confluence, Notion or
Google Drive) and **upload the product catalog**.

Adding checks the settings as `switchboard sources add` does (knowledge/sources.validate),
saves the source and starts its first sync in the background: the Knowledge page shows
`processing`, then `success` or the error. Secrets are never typed into the console: a
source names the environment variable that holds its token (`token_env`), as in the CLI.

The catalog (a CSV with the columns id, name, price and optionally currency, stock,
description, url) is checked, written to the data folder
(`<home>/knowledge/<source>/offers.csv`), and indexed at once, so a question about a new
product is answered when the page comes back; an existing folder source of that name is
pointed at the new file, a new one is added.
"""
from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path
from typing import Any

from starlette.responses import RedirectResponse, Response

from adapters.admin.auth import MAX_UPLOAD, Visit
from adapters.admin.html import esc, h, join, tag
from bot.operators import Operators
from knowledge import sources
from knowledge.connectors.errors import ConnectorError
from knowledge.readers import ReadError, decode_text

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LISTS = ("spaces", "roots", "folders", "drives")  # typed as comma- or space-separated values
TEXTS = ("path", "url", "username", "visibility", "domain", "token_env", "base_url", "api_endpoint")
KIND_LABELS = {"folder": "Folder on this server", "confluence": "Confluence", "notion": "Notion",
               "gdrive": "Google Drive"}


def settings_from(kind: str, fields: dict[str, str]) -> dict[str, Any]:
    """The posted fields (named `<kind>.<setting>`) as a source's settings for `kind`."""
    allowed = set(sources.KINDS[kind].settings + sources.COMMON)
    config: dict[str, Any] = {}
    for key in allowed:
        raw = fields.get(f"{kind}.{key}", fields.get(key, "")).strip()
        if key in LISTS and raw:
            config[key] = [part for part in re.split(r"[\s,]+", raw) if part]
        elif key in TEXTS and raw:
            config[key] = raw
        elif key == "interval" and raw:
            config[key] = int(raw) if raw.isdigit() else raw
    if kind == "confluence":
        config["cloud"] = fields.get("confluence.datacenter") != "on"
        config["attachments"] = fields.get("confluence.attachments") == "on"
    if kind == "folder" and config.get("path"):
        config["path"] = str(Path(config["path"]).expanduser().resolve())
    return config


def check_catalog(data: bytes) -> int:
    """How many products a catalog CSV holds; ValueError saying what is wrong with it."""
    try:
        text = decode_text(data)
        rows = list(csv.DictReader(io.StringIO(text)))
    except (ReadError, csv.Error) as exc:  # binary, not UTF-8, or not CSV
        raise ValueError(f"not a readable CSV file ({exc})") from None
    missing = {"id", "name", "price"} - set(rows[0] if rows else {})
    if not rows:
        raise ValueError("the file has no product rows under its header")
    if missing:
        raise ValueError(f"a catalog needs the columns id, name and price (missing: {', '.join(sorted(missing))})")
    return len(rows)


class SourceForms:
    """The add-a-source and catalog forms, over the runtime's index."""

    def __init__(self, runtime: Any, operators: Operators, knowledge: Any):
        self.runtime, self.operators, self.knowledge = runtime, operators, knowledge

    # -- add a source ---------------------------------------------------------------------------
    async def add_page(self, visit: Visit, error: str = "", status: int = 200) -> Response:
        posted = visit.form if error else {}
        chosen = posted.get("kind", "folder")
        kinds = join(h(f'<option value="{k}"{" selected" if k == chosen else ""}>{esc(label)}</option>')
                     for k, label in KIND_LABELS.items())

        def field(name: str, label: str, hint: str = "", kind: str = "text") -> h:
            value = esc(posted.get(name, ""))
            hint_html = f'<small id="{esc(name)}.hint">{esc(hint)}</small>' if hint else ""
            described = f' aria-describedby="{esc(name)}.hint"' if hint else ""
            if kind == "checkbox":
                checked = " checked" if posted.get(name) == "on" else ""
                return h(f'<label class="check"><input type="checkbox" name="{esc(name)}"{checked}> {esc(label)}</label>'
                         f'{hint_html}')
            return h(f'<label for="{esc(name)}">{esc(label)}</label>'
                     f'<input id="{esc(name)}" name="{esc(name)}" value="{value}"{described}>{hint_html}')

        groups = [
            ("folder", [field("folder.path", "Folder or file", "a path on the machine that runs Switchboard")]),
            ("confluence", [field("confluence.url", "Site", "e.g. https://acme.atlassian.net"),
                            field("confluence.spaces", "Space keys", "comma-separated, e.g. DOC, HELP"),
                            field("confluence.username", "E-mail of the API token's owner (Cloud)"),
                            field("confluence.datacenter", "Data Center (a personal access token)", kind="checkbox"),
                            field("confluence.attachments", "Index PDF and text attachments", kind="checkbox")]),
            ("notion", [field("notion.roots", "Page or database ids", "comma-separated; empty: every page "
                                                                       "shared with the integration"),
                        field("notion.visibility", "Who may be shown its pages", "public or internal"),
                        field("notion.base_url", "API address", "only behind a proxy; empty: api.notion.com")]),
            ("gdrive", [field("gdrive.folders", "Folder ids", "comma-separated"),
                        field("gdrive.drives", "Shared drive ids", "comma-separated"),
                        field("gdrive.domain", "Files shared with this domain count as public")]),
        ]
        sets = [tag("fieldset", join([tag("legend", KIND_LABELS[kind]), *fields])) for kind, fields in groups]
        body = join([
            tag("p", tag("a", "← Knowledge", href="/admin/knowledge")),
            tag("p", error, class_="error", role="alert") if error else "",
            tag("p", "Fill in the settings of the kind you choose; the others are ignored. Tokens stay in the "
                     "server's environment: name the variable that holds this source's (default: "
                     "CONFLUENCE_TOKEN, NOTION_TOKEN, GOOGLE_APPLICATION_CREDENTIALS)."),
            tag("form", join([
                h(f'<input type="hidden" name="csrf" value="{esc(visit.signed.csrf)}">'),
                field("name", "Name", "letters, digits, dot, dash, underscore; profiles list the sources they read"),
                h(f'<label for="kind">Kind</label><select id="kind" name="kind">{kinds}</select>'),
                *sets,
                field("token_env", "Environment variable holding the token", "optional"),
                field("interval", "Seconds between incremental syncs", "optional, at least 60; default 900"),
                tag("button", "Add and sync", type="submit")]),
                method="post", action="/admin/knowledge/add", class_="qa")])
        return visit.page("Add a knowledge source", body, current="knowledge", status=status)

    async def add(self, visit: Visit) -> Response:
        name, kind = visit.form.get("name", "").strip(), visit.form.get("kind", "")
        if not NAME.match(name):
            return await self.add_page(visit, "A source needs a name: letters, digits, dot, dash or underscore "
                                              "(up to 64).", 400)
        if kind not in sources.KINDS:
            return await self.add_page(visit, f"Choose a kind: {', '.join(KIND_LABELS.values())}.", 400)
        try:
            config = sources.validate(kind, settings_from(kind, visit.form))
        except ConnectorError as exc:
            return await self.add_page(visit, f"Not added: {exc}.", 400)
        if kind == "folder" and not Path(config["path"]).exists():
            return await self.add_page(visit, f"Not added: no such file or folder {config['path']}.", 400)
        if await asyncio.to_thread(self.runtime.index.source, name) is not None:
            return await self.add_page(visit, f"Not added: a source named {name} exists already.", 400)
        await asyncio.to_thread(self.runtime.index.add_source, name, kind, config)
        await self.operators.audit(visit.email, "source_added", name, kind=kind)
        self.knowledge.start_sync(name)
        return RedirectResponse("/admin/knowledge?notice=added", status_code=303)

    # -- the product catalog --------------------------------------------------------------------
    async def catalog_page(self, visit: Visit, error: str = "", status: int = 200) -> Response:
        current = await asyncio.to_thread(self.runtime.index.source, "catalog")
        where = f"It replaces the catalog source's file ({sources.origin(current)})." if current else \
            "It becomes a new source named catalog."
        body = join([
            tag("p", tag("a", "← Knowledge", href="/admin/knowledge")),
            tag("p", error, class_="error", role="alert") if error else "",
            tag("p", "A CSV file with a header row and the columns id, name, price, and optionally currency, "
                     f"stock, description and url: one product a row. {where} It is indexed at once."),
            tag("form", join([
                h(f'<input type="hidden" name="csrf" value="{esc(visit.signed.csrf)}">'),
                h('<label for="catalog">Catalog (CSV, up to 5 MB)</label>'
                  '<input id="catalog" name="catalog" type="file" accept=".csv,text/csv" required>'),
                tag("button", "Upload and index", type="submit")]),
                method="post", action="/admin/knowledge/catalog", enctype="multipart/form-data", class_="qa")])
        return visit.page("Upload the product catalog", body, current="knowledge", status=status)

    async def upload(self, visit: Visit) -> Response:
        if "catalog" not in visit.files:
            return await self.catalog_page(visit, "Choose a CSV file to upload (up to 5 MB).", 400)
        _, data = visit.files["catalog"]
        if len(data) > MAX_UPLOAD:
            return await self.catalog_page(visit, "That file is larger than 5 MB.", 413)
        try:
            products = check_catalog(data)
        except ValueError as exc:
            return await self.catalog_page(visit, f"Not indexed: {exc}.", 400)
        target = Path(self.runtime.settings.home) / "knowledge" / "catalog" / "offers.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        failure = await self.knowledge.index_file("catalog", target, visit.email, "catalog_uploaded",
                                                  products=products)
        if failure:
            return await self.catalog_page(visit, f"Could not index: {failure}", 400)
        return RedirectResponse(f"/admin/knowledge?notice=catalog&products={products}", status_code=303)
