"""The console's Knowledge gaps page (admins): what customers asked that the bot could not
answer (bot/gaps.py), most frequent first, with example conversations, and for each a
suggested Q&A entry (the question nearest the group's centre, and an agent's reply when a
person answered one of them) that an admin edits and adds to a Q&A form in one click.

Adding goes through the Knowledge page's own save (adapters/admin/knowledge.py): the form
is written to the data folder and indexed at once, with an audit entry `gap_approved`.
The gap then shrinks as the next questions of that meaning are answered.
"""
from __future__ import annotations

import time
from urllib.parse import quote

from starlette.responses import RedirectResponse, Response

from adapters.admin.auth import Visit
from adapters.admin.html import esc, h, join, tag, when
from adapters.admin.knowledge import MAX_ANSWER, Knowledge
from adapters.admin.overview import BadPeriod, period
from bot.gaps import Gap, Gaps
from bot.overview import DAY

DAYS = 30  # the default period
EXAMPLES = 5  # example questions shown per gap
WHY = {"declined": "declined", "disliked": "answered, then 👎"}
NOTICES = {"approved": "Added to the Q&A form and indexed: the next questions of this meaning are answered "
                       "from it.", "empty": "A question and an answer are both needed."}


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _link(conversation: str) -> str:
    return f"/admin/conversations/{quote(conversation, safe='')}"


class GapsPage:
    """The Knowledge gaps page and its Approve action."""

    def __init__(self, gaps: Gaps, knowledge: Knowledge):
        self.gaps, self.knowledge = gaps, knowledge

    async def page(self, visit: Visit) -> Response:
        params = dict(visit.request.query_params)
        try:
            start, end = period({**params, "from": params.get("from") or str(time.time() - DAYS * DAY)})
        except BadPeriod as exc:
            return visit.page("Knowledge gaps", tag("p", str(exc), class_="error", role="alert"), status=400,
                              current="gaps")
        found, forms = await self.gaps.find(start, end), sorted(await self.knowledge.forms())
        notice = NOTICES.get(params.get("notice", ""), "")
        asked = sum(g.count for g in found)
        intro = tag("p", f"{_many(asked, 'unanswered question')} in {_many(len(found), 'group')}, "
                         f"from {when(start)} to {when(end)}.", id="summary")
        sections = [self._gap(n, gap, forms, visit.signed.csrf) for n, gap in enumerate(found)]
        body = join([tag("p", notice, role="status", class_="error" if params.get("notice") == "empty" else None)
                     if notice else "", intro, *sections] if found else
                    [tag("p", notice, role="status") if notice else "",
                     tag("p", "No unanswered question in this period.", class_="empty", id="summary")])
        return visit.page("Knowledge gaps", body, current="gaps")

    def _gap(self, n: int, gap: Gap, forms: list[str], csrf: str) -> h:
        examples = [tag("li", join([tag("a", a.question[:200], href=_link(a.conversation)),
                                    tag("small", f" · {WHY.get(a.why, a.why)} · {when(a.at)}")]))
                    for a in gap.asked[:EXAMPLES]]
        closed = f" · {gap.answered} answered since" if gap.answered else ""
        heading = tag("h2", join([gap.label, tag("span", f" · {gap.count} open{closed}", class_="count")]))
        return tag("section", join([heading, tag("ul", join(examples)), self._suggestion(n, gap, forms, csrf)]),
                   class_="gap", aria_label=gap.label)

    def _suggestion(self, n: int, gap: Gap, forms: list[str], csrf: str) -> h:
        if not forms:
            return tag("p", "No Q&A form to add an answer to: add one on the Knowledge page.", class_="empty")
        source = (h(f'<input type="hidden" name="source" value="{esc(forms[0])}">') if len(forms) == 1 else
                  join([tag("label", "Q&A form", for_=f"source-{n}"),
                        tag("select", join(tag("option", f, value=f) for f in forms), id=f"source-{n}",
                            name="source")]))
        origin = ("Drafted from an agent's reply: check it before adding." if gap.draft else
                  "No agent answered these customers yet: write the answer.")
        return tag("form", join([
            h(f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
              f'<input type="hidden" name="asked" value="{gap.count}">'),
            tag("h3", "Suggested Q&A entry"), tag("p", origin, class_="hint"), source,
            tag("label", "Question", for_=f"question-{n}"),
            h(f'<input id="question-{n}" name="question" value="{esc(gap.label)}" maxlength="{MAX_ANSWER}" '
              f'required>'),
            tag("label", "Answer", for_=f"answer-{n}"),
            tag("textarea", gap.draft, id=f"answer-{n}", name="answer", rows="4", maxlength=str(MAX_ANSWER),
                required=True),
            tag("button", "Add to the Q&A form", type="submit")]),
            method="post", action="/admin/gaps/approve", class_="qa suggestion")

    async def approve(self, visit: Visit) -> Response:
        fields = visit.form
        question, answer = fields.get("question", "").strip(), fields.get("answer", "").strip()
        forms = await self.knowledge.forms()
        name = fields.get("source", "")
        if name not in forms:
            return visit.page("Not found", tag("p", "No such Q&A form."), status=404, current="gaps")
        if not (question and answer):
            return RedirectResponse("/admin/gaps?notice=empty", status_code=303)
        failure = await self.knowledge.save(name, forms[name], {"new.question": question, "new.answer": answer},
                                            visit.email, "gap_approved", question=question[:200],
                                            asked=fields.get("asked", ""))
        if failure:
            return visit.page("Knowledge gaps", tag("p", f"Could not index: {failure}", class_="error",
                                                    role="alert"), status=500, current="gaps")
        return RedirectResponse("/admin/gaps?notice=approved", status_code=303)
