"""The console's Knowledge page (admins): every source with its status, counts, last sync
and the error of a failed one, a **Retry** button, and the Q&A form editor.

Retry runs a complete sync of the source in the background (the same `Syncer` as
`switchboard sources retry`); the page shows `processing` until it ends. A Q&A form
(a YAML file of predefined and custom questions, see knowledge/sample/qa_form.yaml) is
edited in a form: on Save the console writes the form to the data folder
(`<home>/knowledge/<source>/<file name>`, so a bundled sample is never written over),
points the source there and indexes it at once: unchanged answers are skipped, so the
change is answerable within seconds.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from starlette.responses import RedirectResponse, Response

from adapters.admin.auth import Visit
from adapters.admin.html import esc, form, h, join, table, tag, when
from bot.operators import Operators
from knowledge import sources

log = logging.getLogger(__name__)
MAX_ANSWER = 5000  # characters of one question or answer
NOTICES = {"retrying": "Retrying: the status changes when the sync ends.", "saved": "Saved and indexed.",
           "added": "Source added: its first sync runs now; the status changes when it ends.",
           "catalog": "Catalog indexed."}


def qa_path(info: Any) -> Path | None:
    """The Q&A form file of a folder source that is one, else None."""
    path = Path(str(info.config.get("path", ""))) if info.kind == "folder" else None
    if path is None or path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return path if isinstance(data, dict) and isinstance(data.get("answers"), list) else None


def _languages(data: dict[str, Any]) -> list[str]:
    found = [str(x) for x in data.get("languages") or []]
    for entry in data["answers"]:
        for part in ("question", "answer"):
            if isinstance(entry.get(part), dict):
                found += [str(k) for k in entry[part] if str(k) not in found]
    return list(dict.fromkeys(found)) or [""]


def _text(value: Any, language: str) -> str:
    return str(value.get(language, "")) if isinstance(value, dict) else str(value or "")


def edited(data: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """The Q&A form `data` with the posted `fields` (q.<n>.<language>, a.<n>.<language>, and
    new.question / new.answer for a custom question) applied; empty answers are dropped."""
    languages, answers = _languages(data), []
    for n, entry in enumerate(data["answers"]):
        entry = dict(entry)
        for part, prefix in (("question", "q"), ("answer", "a")):
            values = {lang: fields.get(f"{prefix}.{n}.{lang}", _text(entry.get(part), lang)).strip()[:MAX_ANSWER]
                      for lang in languages}
            entry[part] = values if languages != [""] else values[""]
        if any(_text(entry["answer"], lang) for lang in languages):
            answers.append(entry)
    question, answer = fields.get("new.question", "").strip(), fields.get("new.answer", "").strip()
    if question and answer:
        key = "custom_" + (re.sub(r"[^a-z0-9]+", "_", question.lower()).strip("_")[:40] or str(len(answers)))
        answers.append({"key": key, "question": question[:MAX_ANSWER], "answer": answer[:MAX_ANSWER]})
    return {**data, "answers": answers, "updated_at": time.strftime("%Y-%m-%d", time.gmtime())}


def _skipped(infos: list, shown: int = 5) -> h | str:
    """The documents each source could not read (the first few), and why."""
    rows = [(info.name, document_id, why) for info in infos for document_id, why in info.failed[:shown]]
    if not rows:
        return ""
    return join([tag("h2", "Skipped documents"), table(("Source", "Document", "Why"), rows)])


def _flagged(flags: list, shown: int = 20) -> h | str:
    """Documents in quarantine (knowledge/sanitize.py): an instruction to an AI was removed
    from them at ingest; the rest of each stays answerable. The first finding of each."""
    first: dict[tuple[str, str], Any] = {}
    for flag in flags:
        first.setdefault((flag.source, flag.document_id), flag)
    if not first:
        return ""
    rows = [(f.source, f.document_id, f.kind, f.rule, f.snippet[:120]) for f in list(first.values())[:shown]]
    more = tag("p", f"… and {len(first) - shown} more: switchboard sources lists them all.") if len(first) > shown else ""
    return join([tag("h2", "Flagged for review"),
                 tag("p", "An instruction to an AI was removed from these documents when they were indexed; "
                          "the rest of each stays answerable."),
                 table(("Source", "Document", "Found", "Rule", "Text"), rows), more])


class Knowledge:
    """The Knowledge page and its actions over the runtime's index."""

    def __init__(self, runtime: Any, operators: Operators):
        self.runtime, self.operators = runtime, operators
        self.running: dict[str, asyncio.Task] = {}  # retries in progress, by source

    async def page(self, visit: Visit) -> Response:
        infos = await asyncio.to_thread(self.runtime.index.sources)
        flags = await asyncio.to_thread(self.runtime.index.flagged)
        held: dict[str, set[str]] = {}
        for flag in flags:
            held.setdefault(flag.source, set()).add(flag.document_id)
        rows, syncing = [], False
        for info in infos:
            busy = info.name in self.running and not self.running[info.name].done()
            actions = [form(f"/admin/knowledge/{quote(info.name, safe='')}/retry", visit.signed.csrf, "Retry")]
            if qa_path(info) is not None:
                actions.append(tag("a", "Edit Q&A form", href=f"/admin/knowledge/{quote(info.name, safe='')}/qa"))
            status = "processing" if busy else info.status
            syncing = syncing or status == "processing"
            rows.append((info.name, sources.origin(info), tag("span", status, class_=f"status {status}"),
                         info.error or "", info.documents, info.chunks, info.failures, len(held.get(info.name, ())),
                         when(info.last_sync or 0), tag("div", join(actions), class_="actions")))
        notice = NOTICES.get(visit.request.query_params.get("notice", ""), "")
        products = visit.request.query_params.get("products", "")
        if notice and products.isdigit():
            notice += f" {int(products)} product{'' if int(products) == 1 else 's'}."
        links = tag("p", join([tag("a", "Add a source", href="/admin/knowledge/add"), " · ",
                               tag("a", "Upload the product catalog", href="/admin/knowledge/catalog")]))
        body = join([tag("p", notice, role="status") if notice else "", links,
                     table(("Source", "From", "Status", "Error", "Documents", "Chunks", "Skipped", "Flagged",
                            "Last sync", ""), rows, "No knowledge source yet: switchboard ingest PATH"),
                     _skipped(infos), _flagged(flags)])
        # while a sync runs the page reloads itself: its status and counts grow as batches land
        return visit.page("Knowledge", body, current="knowledge", refresh=2 if syncing else 0)

    async def retry(self, visit: Visit) -> Response:
        name = visit.request.path_params["name"]
        if self.runtime.index.source(name) is None:
            return visit.page("Not found", tag("p", "No such source."), status=404)
        self.start_sync(name)
        await self.operators.audit(visit.email, "source_retried", name)
        return RedirectResponse("/admin/knowledge?notice=retrying", status_code=303)

    def start_sync(self, name: str) -> None:
        """A complete sync of source `name` in the background, unless one runs already."""
        if name not in self.running or self.running[name].done():
            self.running[name] = asyncio.create_task(self._sync(name))

    async def _sync(self, name: str) -> None:
        try:
            await asyncio.to_thread(self.runtime.syncer().sync, name, True)
        except Exception:  # the source's status says what went wrong
            log.warning("retry of source %s failed", name, exc_info=True)

    async def qa_page(self, visit: Visit, error: str = "") -> Response:
        name, found = await self._qa(visit)
        if found is None:
            return visit.page("Not found", tag("p", "No such Q&A form."), status=404)
        data = yaml.safe_load(found.read_text(encoding="utf-8"))
        languages = _languages(data)
        sets = []
        for n, entry in enumerate(data["answers"]):
            fields = []
            for lang in languages:
                suffix = f" ({lang})" if lang else ""
                fields.append(h(
                    f'<label for="q.{n}.{esc(lang)}">Question{esc(suffix)}</label>'
                    f'<input id="q.{n}.{esc(lang)}" name="q.{n}.{esc(lang)}" value="{esc(_text(entry["question"], lang))}">'
                    f'<label for="a.{n}.{esc(lang)}">Answer{esc(suffix)}</label>'
                    f'<textarea id="a.{n}.{esc(lang)}" name="a.{n}.{esc(lang)}" rows="3">'
                    f'{esc(_text(entry["answer"], lang))}</textarea>'))
            sets.append(tag("fieldset", join([tag("legend", str(entry.get("key", n)).replace("_", " ")), *fields])))
        sets.append(tag("fieldset", join([tag("legend", "New custom question"), h(
            '<label for="new.question">Question</label><input id="new.question" name="new.question">'
            '<label for="new.answer">Answer</label><textarea id="new.answer" name="new.answer" rows="3"></textarea>')])))
        body = join([tag("p", tag("a", "← Knowledge", href="/admin/knowledge")),
                     tag("p", error, class_="error", role="alert") if error else "",
                     tag("p", "Empty an answer to remove its question. Saving indexes the form at once."),
                     tag("form", join([h(f'<input type="hidden" name="csrf" value="{esc(visit.signed.csrf)}">'),
                                       *sets, tag("button", "Save and index", type="submit")]),
                         method="post", action=f"/admin/knowledge/{quote(name, safe='')}/qa", class_="qa")])
        return visit.page(f"Q&A form · {name}", body, current="knowledge")

    async def qa_save(self, visit: Visit) -> Response:
        name, found = await self._qa(visit)
        if found is None:
            return visit.page("Not found", tag("p", "No such Q&A form."), status=404)
        failure = await self.save(name, found, visit.form, visit.email, "qa_form_saved")
        if failure:
            return await self.qa_page(visit, f"Could not index: {failure}")
        return RedirectResponse("/admin/knowledge?notice=saved", status_code=303)

    async def save(self, name: str, found: Path, fields: dict[str, str], email: str, action: str,
                   **audit: Any) -> str:
        """Apply `fields` to the Q&A form `found` of source `name`, write it to the data folder
        and index it; an audit entry `action` by `email`. The indexing error, or ""."""
        data = edited(yaml.safe_load(found.read_text(encoding="utf-8")), fields)
        target = Path(self.runtime.settings.home) / "knowledge" / name / found.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000), encoding="utf-8")
        return await self.index_file(name, target, email, action, answers=len(data["answers"]), **audit)

    async def index_file(self, name: str, target: Path, email: str, action: str, **audit: Any) -> str:
        """Index the file `target` as folder source `name` now (the source points there
        afterwards); an audit entry `action` by `email`. The indexing error, or ""."""
        started = time.monotonic()
        report = await asyncio.to_thread(self.runtime.ingest, target, name)
        await self.operators.audit(email, action, name, seconds=round(time.monotonic() - started, 2),
                                   failures=len(report.failures), **audit)
        return str(report.failures[0].error) if report.failures else ""

    async def forms(self) -> dict[str, Path]:
        """The Q&A form file of every source that is one, by source."""
        infos = await asyncio.to_thread(self.runtime.index.sources)
        return {info.name: path for info in infos if (path := qa_path(info)) is not None}

    async def _qa(self, visit: Visit) -> tuple[str, Path | None]:
        name = visit.request.path_params["name"]
        info = await asyncio.to_thread(self.runtime.index.source, name)
        return name, (qa_path(info) if info is not None else None)
