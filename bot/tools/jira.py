"""Jira tools: open a ticket from the conversation, add to it, and say where it stands.

They run on atlassian-python-api's `Jira` client against REST v2, whose wiki-markup text Cloud
and Data Center both accept: an account email with an API token on Cloud, a personal access
token (Bearer) on Data Center. The client blocks (requests), so the tools are plain functions
the engine runs in a thread; each HTTP request is bounded by `timeout`.

A ticket's description is the model's text, the conversation so far (last turns, trimmed, in
a `{noformat}` block so nothing the user wrote is read as markup or mentions), the link back
to the thread and who reported it. Personal data stays as the placeholders the model wrote
(`reveal=()`, bot/pii.py), as in the transcript: Jira keeps no email or card number the user
typed. The reporter field is set only when exactly one Jira user
has the user's email; fields the project's create screen refuses (reporter, priority, labels)
are dropped and the create tried once more: a 400 created nothing. Created keys go to
`ctx.notes["tickets"]`, so "any news on my ticket?" finds them later.

What a user may see: the status of any ticket of the profile's project; its summary and last
public comment, and adding comments, only for the tickets of this conversation, unless the
profile's `tool_options` say `any_ticket = true` (staff). Jira failing (5xx, 401/403, 429,
timeout, no connection) raises `ToolError` with a short message that never holds a credential.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Callable, Literal

import requests
from atlassian import Jira

from bot.tools import ToolContext, ToolError, tool

log = logging.getLogger(__name__)

KEY = re.compile(r"[A-Z][A-Z0-9_]+-\d+")
OPTIONAL_FIELDS = ("reporter", "priority", "labels")
LABEL = "switchboard"
STATUS_FIELDS = "summary,status,assignee,updated,comment"
TRANSCRIPT_TURNS = 12  # the conversation section of a description: the last turns,
TURN_CHARS = 600  # each cut to this many characters,
TRANSCRIPT_CHARS = 6000  # oldest dropped first beyond this
TEXT_CHARS = 8000  # the model's description and comments
COMMENT_CHARS = 500  # a last comment as reported back
RECENT_TICKETS = 3  # "any news on my ticket?" reports this many of the conversation's tickets
RETRY_AFTER_CAP = 5  # seconds the client may wait once on a 429 before giving up


class _Rejected(ToolError):
    """Jira refused the request as invalid (HTTP 400); `fields` are the fields it named."""

    def __init__(self, message: str, fields: tuple[str, ...]):
        super().__init__(message)
        self.fields = fields


class _NotFound(ToolError):
    """Jira has no such issue, or won't show it to us (HTTP 404)."""


class JiraTools:
    """Tickets in one Jira project (a profile may choose another with `tool_options.jira_project`)."""

    def __init__(self, *, url: str, project: str, email: str = "", token: str, cloud: bool = True,
                 timeout: float = 15.0, issue_type: str = "Task", set_reporter: bool = True):
        if cloud and not email:
            raise ValueError("Jira Cloud needs the email of the account the API token belongs to")
        credentials = {"username": email, "password": token} if cloud else {"token": token}
        self.client = Jira(url=url, cloud=cloud, max_backoff_seconds=RETRY_AFTER_CAP, **credentials)
        self.client.timeout = timeout  # after construction: the constructor rounds it down to whole seconds
        self.url, self.project, self.cloud = url.rstrip("/"), project, cloud
        self.timeout, self.issue_type, self.set_reporter = timeout, issue_type, set_reporter

    # ---- tools ---------------------------------------------------------------------------------------
    @tool(acting=True, confirm="confirm_create_ticket", done="done_create_ticket", timeout=60, reveal=())
    def create_ticket(self, ctx: ToolContext, summary: str, description: str = "",
                      priority: Literal["Lowest", "Low", "Medium", "High", "Highest"] = "Medium") -> dict[str, Any]:
        """Open a support ticket for the team, for a problem you can't solve or a request a person must
        handle. The conversation so far, a link to it and who reported it are attached for you.

        Args:
            summary: one line saying what is wrong or wanted, e.g. "VPN disconnects every 10 minutes"
            description: what the user reported, what they already tried, and anything the team needs
            priority: how urgent it is for the user; Medium unless they say otherwise
        """
        title = " ".join(summary.split())[:255]
        if not title:
            return {"error": "the summary is empty: write one line saying what the problem is"}
        issue_type = str(ctx.options.get("jira_issue_type") or self.issue_type)
        fields: dict[str, Any] = {
            "project": {"key": self._project(ctx)}, "issuetype": {"name": issue_type}, "summary": title,
            "description": _description(ctx, description), "priority": {"name": priority}, "labels": [LABEL]}
        reporter = self._reporter(ctx.user.email) if self.set_reporter else None
        if reporter:
            fields["reporter"] = reporter
        key = self._create(fields)["key"]
        ctx.notes.setdefault("tickets", []).append(key)
        return {"key": key, "url": self._browse(key), "summary": title, "status": self._status_after_create(key)}

    @tool(acting=True, confirm="confirm_add_comment", done="done_add_comment", reveal=())
    def add_comment(self, ctx: ToolContext, ticket: str, comment: str) -> dict[str, Any]:
        """Add a comment to a ticket opened in this conversation, e.g. new details or an answer to the
        team's question.

        Args:
            ticket: the ticket key, e.g. SUP-123
            comment: the text to add, in the user's words
        """
        key = _key(ticket)
        if key is None:
            return _bad_key(ticket)
        if not self._mine(ctx, key):
            return {"ticket": key, "error": "comments can only be added to tickets opened in this conversation: "
                                            "offer to open a new ticket or to reach a person"}
        if not comment.strip():
            return {"ticket": key, "error": "the comment is empty"}
        body = f"{_plain(comment.strip()[:TEXT_CHARS])}\n\n— {_who(ctx)}, through the support bot" + (
            f"\n{ctx.link}" if ctx.link else "")
        try:
            self._call("comment", self.client.issue_add_comment, key, body)
        except _NotFound:
            return _missing(key)
        return {"ticket": key, "url": self._browse(key), "comment_added": True}

    @tool(timeout=60)
    def ticket_status(self, ctx: ToolContext, ticket: str = "") -> dict[str, Any]:
        """Say where a ticket stands: status, who handles it, when it last changed and the team's last
        reply. Without a ticket key, reports the tickets opened in this conversation (for "any news on
        my ticket?").

        Args:
            ticket: the ticket key, e.g. SUP-123; leave it empty for this conversation's tickets
        """
        if not ticket.strip():
            keys = list(ctx.notes.get("tickets") or [])[-RECENT_TICKETS:]
            if not keys:
                return {"tickets": [], "note": "no ticket was opened in this conversation: ask for the ticket key"}
            return {"tickets": [self._report(ctx, k) for k in keys]}
        key = _key(ticket)
        if key is None:
            return _bad_key(ticket)
        if not (self._mine(ctx, key) or key.split("-")[0] == self._project(ctx)):
            return {"ticket": key, "error": f"{key} is not a ticket of this help desk"}
        return self._report(ctx, key)

    # ---- Jira calls ----------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(...)` with the client's errors turned into ours (messages safe to log)."""
        try:
            return fn(*args, **kwargs)
        except requests.HTTPError as exc:
            raise _http_error(what, exc.response) from exc
        except requests.Timeout as exc:
            raise ToolError(f"Jira {what}: no answer within {self.timeout:g}s") from exc
        except requests.RequestException as exc:
            raise ToolError(f"Jira {what}: {type(exc).__name__} (can't reach Jira)") from exc

    def _create(self, fields: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._call("create", self.client.create_issue, fields=fields)
        except _Rejected as exc:
            dropped = [f for f in exc.fields if f in OPTIONAL_FIELDS and f in fields]
            if not dropped or len(dropped) < len(exc.fields):
                raise
            log.info("Jira create: the project refuses %s; creating without", ", ".join(dropped))
            return self._call("create", self.client.create_issue,
                              fields={k: v for k, v in fields.items() if k not in dropped})

    def _reporter(self, email: str) -> dict[str, str] | None:
        """The reporter field for the Jira user with this email, if exactly one is visible to us."""
        if not email:
            return None
        try:
            users = self.client.user_find_by_user_string(**({"query": email} if self.cloud else {"username": email}))
        except requests.RequestException as exc:  # the description names the reporter anyway
            log.info("Jira user search failed (%s): reporter left to the description", type(exc).__name__)
            return None
        found = [u for u in users if isinstance(u, dict)
                 and str(u.get("emailAddress", "")).casefold() == email.casefold()] if isinstance(users, list) else []
        if len(found) != 1:
            return None
        return {"id": found[0]["accountId"]} if self.cloud else {"name": found[0]["name"]}

    def _fetch(self, key: str) -> dict[str, Any]:
        return self._call("status", self.client.get_issue, key, fields=STATUS_FIELDS, update_history=False)

    def _status_after_create(self, key: str) -> str:
        """The new issue's status; "" if Jira can't say right now (the issue exists: no error then)."""
        try:
            return self._fetch(key)["fields"]["status"]["name"]
        except (ToolError, KeyError, TypeError) as exc:
            log.info("Jira: no status for the new %s (%s)", key, exc)
            return ""

    def _report(self, ctx: ToolContext, key: str) -> dict[str, Any]:
        try:
            fields = self._fetch(key)["fields"]
        except _NotFound:
            return _missing(key)
        report = {"ticket": key, "url": self._browse(key), "status": (fields.get("status") or {}).get("name", ""),
                  "assignee": (fields.get("assignee") or {}).get("displayName") or "nobody yet",
                  "updated": fields.get("updated", "")}
        if self._mine(ctx, key):
            report["summary"] = fields.get("summary", "")
            report["last_reply"] = _last_public_comment(fields)
        return report

    # ---- helpers -------------------------------------------------------------------------------------
    def _project(self, ctx: ToolContext) -> str:
        return str(ctx.options.get("jira_project") or self.project)

    def _mine(self, ctx: ToolContext, key: str) -> bool:
        return key in (ctx.notes.get("tickets") or ()) or bool(ctx.options.get("any_ticket"))

    def _browse(self, key: str) -> str:
        return f"{self.url}/browse/{key}"


def _http_error(what: str, response: requests.Response | None) -> ToolError:
    status = response.status_code if response is not None else 0
    if status == 404:
        return _NotFound(f"Jira {what}: not found (HTTP 404)")
    if status == 400:
        messages, errors = _error_body(response)
        detail = "; ".join(messages + [f"{k}: {v}" for k, v in errors.items()])[:300]
        return _Rejected(f"Jira {what}: refused (HTTP 400): {detail}", tuple(errors))
    if status in (401, 403):
        return ToolError(f"Jira {what}: our credentials were refused (HTTP {status})")
    if status == 429:
        return ToolError(f"Jira {what}: rate limited (HTTP 429)")
    return ToolError(f"Jira {what}: HTTP {status}")


def _error_body(response: requests.Response) -> tuple[list[str], dict[str, str]]:
    """Jira's `{"errorMessages": [...], "errors": {field: message}}`, as far as it is there."""
    try:
        body = response.json()
    except ValueError:
        return [], {}
    if not isinstance(body, dict):
        return [], {}
    messages = [str(m) for m in body.get("errorMessages") or [] if m]
    errors = body.get("errors") if isinstance(body.get("errors"), dict) else {}
    return messages, {str(k): str(v) for k, v in errors.items()}


def _key(text: str) -> str | None:
    key = text.strip().upper()
    return key if KEY.fullmatch(key) else None


def _bad_key(text: str) -> dict[str, Any]:
    return {"error": f"{text.strip()[:40]!r} is not a ticket key: a key looks like SUP-123"}


def _missing(key: str) -> dict[str, Any]:
    return {"ticket": key, "found": False, "note": f"there is no ticket {key} (or it can't be seen from here)"}


def _plain(text: str) -> str:
    """Text the user influenced, with Jira's mention syntax defused (no one gets pinged)."""
    return text.replace("[~", "\\[~")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _who(ctx: ToolContext) -> str:
    user = ctx.user
    name = " ".join(p for p in (user.name, f"<{user.email}>" if user.email else "") if p)
    return f"{name or 'a user'} on {ctx.channel} (user id {user.id})"


def _transcript(turns: tuple[tuple[str, str], ...]) -> str:
    lines = []
    for role, text in turns[-TRANSCRIPT_TURNS:]:
        lines.append(f"{'User' if role == 'user' else 'Bot'}: {_cut(text.strip(), TURN_CHARS)}")
    while len(lines) > 1 and sum(len(line) + 1 for line in lines) > TRANSCRIPT_CHARS:
        lines.pop(0)
    return re.sub(r"(?i)\{noformat\}", "{ noformat }", "\n".join(lines))


def _description(ctx: ToolContext, text: str) -> str:
    parts = [_plain(text.strip()[:TEXT_CHARS])] if text.strip() else []
    conversation = _transcript(ctx.transcript)
    if conversation:
        parts.append(f"h4. Conversation\n{{noformat}}\n{conversation}\n{{noformat}}")
    if ctx.link:
        parts.append(f"Link to the conversation: {ctx.link}")
    parts.append(f"Reported by {_who(ctx)}")
    return "\n\n".join(parts)


def _last_public_comment(fields: dict[str, Any]) -> dict[str, str] | None:
    """The newest comment everyone may read (not restricted to a role or group, not internal)."""
    comments = ((fields.get("comment") or {}).get("comments")) or []
    public = [c for c in comments if not c.get("visibility") and c.get("jsdPublic", True)]
    if not public:
        return None
    last = public[-1]
    body = last.get("body") if isinstance(last.get("body"), str) else ""
    return {"author": (last.get("author") or {}).get("displayName", ""), "created": last.get("created", ""),
            "text": _cut(body, COMMENT_CHARS)}
