"""HTML for the console's pages: one layout, escaped values, small helpers.

Pages are rendered here on the server from Python strings; every value that comes from
a customer, an operator or a document goes through `esc` (or `h`, a pre-escaped piece).
The pages carry no inline script or style: /static/admin.js and /static/admin.css do
the rest, under the same Content-Security-Policy as the web chat.
"""
from __future__ import annotations

import html
import time
from typing import Iterable

from starlette.responses import HTMLResponse

from adapters.web import CSP

HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store", "Referrer-Policy": "same-origin",
           "X-Content-Type-Options": "nosniff"}
NAV = (("overview", "Overview", "admin"), ("inbox", "Inbox", "agent"), ("conversations", "Conversations", "agent"),
       ("knowledge", "Knowledge", "admin"), ("gaps", "Knowledge gaps", "admin"),
       ("profiles", "Profiles", "admin"), ("audit", "Audit", "admin"))


class h(str):
    """A piece of HTML already safe to insert as it is."""


def esc(value: object) -> str:
    """`value` as HTML text (an `h` stays as it is)."""
    return value if isinstance(value, h) else html.escape(str(value), quote=True)


def join(pieces: Iterable[object]) -> h:
    return h("".join(esc(piece) for piece in pieces))


def tag(name: str, content: object = "", /, **attrs: object) -> h:
    """`<name attrs>content</name>`; an attribute `class_` is `class`, a False/None one left out."""
    rendered = "".join(f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"' if value is not True
                       else f' {key.rstrip("_").replace("_", "-")}'
                       for key, value in attrs.items() if value is not None and value is not False)
    return h(f"<{name}{rendered}>{esc(content)}</{name}>")


def when(at: float) -> str:
    """A time for a person: UTC, to the minute."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at)) if at else ""


def ago(at: float, now: float | None = None) -> str:
    seconds = max(0, int((now or time.time()) - at))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h" if seconds < 172800 else f"{seconds // 86400} d"


def form(action: str, csrf: str, label: str, *fields: object, class_: str = "") -> h:
    """A POST form whose only visible part may be its button."""
    return tag("form", join([h(f'<input type="hidden" name="csrf" value="{esc(csrf)}">'), *fields,
                             tag("button", label, type="submit")]),
               method="post", action=action, class_=class_ or None)


def page(title: str, body: object, *, role: str = "", email: str = "", csrf: str = "", current: str = "",
         status: int = 200, live: str = "", refresh: int = 0) -> HTMLResponse:
    """The console's layout around `body`: navigation for the operator's `role`, their
    sign-out form, and `live` (a stream URL) for admin.js to refresh `#live` when it says so,
    or `refresh`: reload the whole page after that many seconds (a sync in progress)."""
    nav = ""
    if role:
        links = [tag("a", label, href=f"/admin/{key}", aria_current="page" if key == current else None)
                 for key, label, needs in NAV if role == "admin" or needs == "agent"]
        nav = tag("nav", join([tag("span", "Switchboard", class_="brand"), *links,
                               tag("span", email, class_="who"),
                               form("/admin/logout", csrf, "Sign out", class_="signout")]),
                  aria_label="Console")
    meta = h(f'<meta name="csrf" content="{esc(csrf)}">') if csrf else ""
    stream = h(f'<meta name="live" content="{esc(live)}">') if live else ""
    if refresh:
        stream = h(f'{stream}<meta http-equiv="refresh" content="{int(refresh)}">')
    document = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">{meta}{stream}'
                f'<title>{esc(title)} · Switchboard console</title><link rel="stylesheet" href="/static/admin.css">'
                f'<script src="/static/admin.js" defer></script></head>'
                f'<body>{nav}<main id="main"><h1>{esc(title)}</h1>{esc(body)}</main></body></html>')
    return HTMLResponse(document, status_code=status, headers=HEADERS)


def table(headings: Iterable[str], rows: Iterable[Iterable[object]], empty: str = "Nothing here.") -> h:
    rows = list(rows)
    if not rows:
        return tag("p", empty, class_="empty")
    head = tag("thead", tag("tr", join(tag("th", heading, scope="col") for heading in headings)))
    body = tag("tbody", join(tag("tr", join(tag("td", cell) for cell in row)) for row in rows))
    return tag("div", tag("table", join([head, body])), class_="scroll")
