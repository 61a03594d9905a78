"""A fake Jira REST API (Cloud v2/v3 paths, as atlassian-python-api calls them).

Issues live in memory: ``POST /rest/api/{2,3}/issue`` validates like Jira (project, issue type,
summary, fields the create screen lacks) and answers 201 ``{"id", "key", "self"}``;
``GET /issue/{key}`` answers the issue with ``fields`` (status, assignee, updated, comment...)
or 404; ``POST /issue/{key}/comment`` answers 201 with the comment. ``project/{key}``,
``user/search`` (``query`` on Cloud, ``username`` on Data Center), ``serverInfo`` and
``myself`` are there too. Errors have Jira's shape ``{"errorMessages": [...], "errors": {...}}``;
a wrong Basic (email:API token) or Bearer (PAT) credential answers 401. Bodies (wiki text in
v2, ADF documents in v3) are stored as sent.

Tests act as the service desk (``set_status``, ``assign``, ``reply``) and script trouble:
``fail`` answers the next calls with a status, ``hold`` keeps the next calls waiting until
``release`` (to let a client time out without the test sleeping). Every call is recorded.
"""
from __future__ import annotations

import asyncio
import base64
import json
import threading
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
NOT_FOUND = "Issue does not exist or you do not have permission to see it."
HOLD_LIMIT = 30.0  # a held call answers anyway after this long, so a forgotten release can't hang a run


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class JiraUser:
    account_id: str
    display_name: str
    email: str
    name: str = ""  # the Data Center username

    def to_json(self, show_email: bool = True) -> dict[str, Any]:
        data = {"accountId": self.account_id, "displayName": self.display_name, "active": True,
                "accountType": "atlassian", "name": self.name or self.email}
        if show_email:
            data["emailAddress"] = self.email
        return data


class JiraError(Exception):
    def __init__(self, status: int, messages: tuple[str, ...] = (), errors: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.messages, self.errors = status, list(messages), errors or {}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


@dataclass
class FakeJira:
    email: str = "bot@example.com"
    token: str = "jira-api-token-SECRET"
    projects: dict[str, str] = field(default_factory=lambda: {"SUP": "Support"})  # key -> name
    issue_types: tuple[str, ...] = ("Task", "Bug", "Service Request")
    users: list[JiraUser] = field(default_factory=lambda: [
        JiraUser("5b10ac8d82e05b22cc7d4ef5", "Jane Customer", "jane@example.com", "jane"),
        JiraUser("5b10a2844c20165700ede21g", "Sam Agent", "sam.agent@example.com", "sam")])
    bot: JiraUser = field(default_factory=lambda: JiraUser("557058:bot", "Switchboard Bot", "bot@example.com", "bot"))
    hidden_fields: set[str] = field(default_factory=set)  # fields the create screen lacks: setting them is a 400
    show_emails: bool = True  # Cloud hides emailAddress of users whose privacy settings say so
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)  # by key, as GET /issue answers
    calls: list[Call] = field(default_factory=list)
    _script: list[int] = field(default_factory=list)  # statuses for the next calls (0: hold)
    _release: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _next_id: int = 10000
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def app(self) -> Starlette:
        routes = [("/serverInfo", "GET", self._server_info), ("/myself", "GET", self._myself),
                  ("/project/{key}", "GET", self._project), ("/user/search", "GET", self._user_search),
                  ("/issue", "POST", self._create), ("/issue/{key}", "GET", self._issue),
                  ("/issue/{key}/comment", "GET", self._comments), ("/issue/{key}/comment", "POST", self._comment)]
        return Starlette(routes=[Route("/rest/api/{version}" + path, self._endpoint(fn), methods=[method])
                                 for path, method, fn in routes])

    # ---- test controls -------------------------------------------------------------------------------
    def fail(self, times: int = 1, status: int = 500) -> None:
        """The next `times` calls answer `status` with a Jira error body."""
        with self._lock:
            self._script += [status] * times

    def hold(self, times: int = 1) -> None:
        """The next `times` calls wait for `release` before they are handled."""
        with self._lock:
            self._script += [0] * times

    def release(self) -> None:
        """Let held calls go on (they are then handled normally)."""
        with self._lock:
            self._script = [s for s in self._script if s != 0]
            if self._loop and self._release:
                self._loop.call_soon_threadsafe(self._release.set)

    def created(self) -> list[dict[str, Any]]:
        """The issues created through the API, oldest first."""
        with self._lock:
            return list(self.issues.values())

    def comments(self, key: str) -> list[dict[str, Any]]:
        """The comments of an issue, oldest first (as GET /issue/{key}/comment lists them)."""
        with self._lock:
            return list(self.issues[key]["fields"]["comment"]["comments"])

    def set_status(self, key: str, name: str, category: str = "indeterminate") -> None:
        with self._lock:
            fields = self.issues[key]["fields"]
            fields["status"] = {"name": name, "id": str(zlib.crc32(name.encode()) % 10000),
                                "statusCategory": {"key": category, "name": category.title()}}
            fields["updated"] = _now()

    def assign(self, key: str, user: JiraUser | None) -> None:
        with self._lock:
            self.issues[key]["fields"]["assignee"] = user.to_json() if user else None
            self.issues[key]["fields"]["updated"] = _now()

    def reply(self, key: str, body: str, author: JiraUser | None = None, visibility: dict | None = None) -> None:
        """A comment written in Jira (by an agent, by default the second user)."""
        with self._lock:
            self._add_comment(key, body, author or self.users[1], visibility, "http://jira.invalid")

    # ---- HTTP ----------------------------------------------------------------------------------------
    def _endpoint(self, handler: Callable[[Request, Any], tuple[int, Any]]):
        async def endpoint(request: Request) -> Response:
            body = json.loads(await request.body() or b"null")
            call = Call(request.method, request.url.path, dict(request.query_params), body)
            with self._lock:
                self.calls.append(call)
                scripted = self._script.pop(0) if self._script else None
            try:
                if not self._authorized(request.headers.get("authorization", "")):
                    raise JiraError(401, ("You are not authenticated. Authentication required to perform "
                                          "this operation.",))
                if scripted == 0:
                    await self._held()
                elif scripted:
                    raise JiraError(scripted, (f"Internal server error ({scripted})",))
                status, result = handler(request, body)
                response: Response = JSONResponse(result, status_code=status)
            except JiraError as err:
                response = JSONResponse({"errorMessages": err.messages, "errors": err.errors},
                                        status_code=err.status, media_type="application/json;charset=UTF-8")
            call.status = response.status_code
            return response
        return endpoint

    def _authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return value == self.token
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(value).decode() == f"{self.email}:{self.token}"
            except ValueError:
                return False
        return False

    async def _held(self) -> None:
        with self._lock:
            if self._release is None or self._release.is_set():
                self._loop, self._release = asyncio.get_running_loop(), asyncio.Event()
            event = self._release
        try:
            await asyncio.wait_for(event.wait(), HOLD_LIMIT)
        except asyncio.TimeoutError:
            pass

    # ---- resources -----------------------------------------------------------------------------------
    def _server_info(self, request: Request, body: Any) -> tuple[int, Any]:
        return 200, {"baseUrl": str(request.base_url).rstrip("/"), "version": "1001.0.0-SNAPSHOT",
                     "deploymentType": "Cloud", "serverTitle": "Jira"}

    def _myself(self, request: Request, body: Any) -> tuple[int, Any]:
        return 200, self.bot.to_json()

    def _project(self, request: Request, body: Any) -> tuple[int, Any]:
        key = request.path_params["key"]
        if key not in self.projects:
            raise JiraError(404, (f"No project could be found with key '{key}'.",))
        return 200, {"id": str(10000 + list(self.projects).index(key)), "key": key, "name": self.projects[key],
                     "issueTypes": [{"id": str(10001 + i), "name": n, "subtask": False}
                                    for i, n in enumerate(self.issue_types)]}

    def _user_search(self, request: Request, body: Any) -> tuple[int, Any]:
        query = (request.query_params.get("query") or request.query_params.get("username") or "").casefold()
        if not query:
            raise JiraError(400, ("The query parameter 'query' is required.",))
        found = [u for u in self.users if query in u.email.casefold() or query in u.display_name.casefold()]
        return 200, [u.to_json(self.show_emails) for u in found]

    def _create(self, request: Request, body: Any) -> tuple[int, Any]:
        fields = (body or {}).get("fields") or {}
        self._validate(fields)
        with self._lock:
            self._next_id += 1
            project = fields["project"]["key"]
            number = 1 + sum(1 for k in self.issues if k.startswith(project + "-"))
            key, issue_id = f"{project}-{number}", str(self._next_id)
            url = f"{str(request.base_url).rstrip('/')}/rest/api/{request.path_params['version']}/issue/{issue_id}"
            self.issues[key] = self._new_issue(issue_id, key, url, fields)
        return 201, {"id": issue_id, "key": key, "self": url}

    def _validate(self, fields: dict[str, Any]) -> None:
        errors: dict[str, str] = {}
        project = (fields.get("project") or {}).get("key")
        if project not in self.projects:
            errors["project"] = "valid project is required"
        if (fields.get("issuetype") or {}).get("name") not in self.issue_types:
            errors["issuetype"] = "Specify a valid issue type"
        summary = fields.get("summary")
        if not summary:
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > 255 or "\n" in summary:
            errors["summary"] = "Summary must be less than 255 characters and a single line."
        for name in sorted(self.hidden_fields & set(fields)):
            errors[name] = f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
        if "priority" in fields and "priority" not in errors and fields["priority"].get("name") not in PRIORITIES:
            errors["priority"] = "Specify a valid priority"
        reporter = fields.get("reporter")
        if reporter and "reporter" not in errors and self._user(reporter) is None:
            errors["reporter"] = "Specified reporter is not a user."
        if errors:
            raise JiraError(400, (), errors)

    def _user(self, ref: dict[str, Any]) -> JiraUser | None:
        return next((u for u in self.users if ref.get("id") == u.account_id or ref.get("accountId") == u.account_id
                     or (ref.get("name") and ref.get("name") == u.name)), None)

    def _new_issue(self, issue_id: str, key: str, url: str, fields: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        reporter = self._user(fields["reporter"]) if fields.get("reporter") else self.bot
        return {"id": issue_id, "key": key, "self": url, "fields": {
            "summary": fields["summary"], "description": fields.get("description"),
            "issuetype": {"name": fields["issuetype"]["name"]},
            "project": {"key": fields["project"]["key"], "name": self.projects[fields["project"]["key"]]},
            "priority": {"name": (fields.get("priority") or {}).get("name", "Medium")},
            "labels": fields.get("labels", []), "reporter": reporter.to_json(), "creator": self.bot.to_json(),
            "status": {"name": "To Do", "id": "10000", "statusCategory": {"key": "new", "name": "To Do"}},
            "assignee": None, "created": now, "updated": now,
            "comment": {"comments": [], "maxResults": 0, "total": 0, "startAt": 0}}}

    def _found(self, key: str) -> dict[str, Any]:
        issue = self.issues.get(key.upper())
        if issue is None:
            raise JiraError(404, (NOT_FOUND,))
        return issue

    def _issue(self, request: Request, body: Any) -> tuple[int, Any]:
        with self._lock:
            issue = json.loads(json.dumps(self._found(request.path_params["key"])))
        wanted = [f for f in request.query_params.get("fields", "*all").split(",") if f]
        if "*all" not in wanted and "*navigable" not in wanted:
            issue["fields"] = {k: v for k, v in issue["fields"].items() if k in wanted}
        return 200, issue

    def _comments(self, request: Request, body: Any) -> tuple[int, Any]:
        with self._lock:
            return 200, dict(self._found(request.path_params["key"])["fields"]["comment"])

    def _comment(self, request: Request, body: Any) -> tuple[int, Any]:
        if not (body or {}).get("body"):
            raise JiraError(400, (), {"comment": "Comment body can not be empty!"})
        with self._lock:
            return 201, self._add_comment(request.path_params["key"], body["body"], self.bot, body.get("visibility"),
                                          str(request.base_url).rstrip("/"))

    def _add_comment(self, key: str, text: Any, author: JiraUser, visibility: dict | None, base: str) -> dict:
        issue = self._found(key)
        thread = issue["fields"]["comment"]
        now = _now()
        self._next_id += 1
        comment = {"id": str(self._next_id), "self": f"{base}/rest/api/2/issue/{issue['id']}/comment/{self._next_id}",
                   "author": author.to_json(), "updateAuthor": author.to_json(), "body": text,
                   "created": now, "updated": now, "jsdPublic": visibility is None}
        if visibility:
            comment["visibility"] = visibility
        thread["comments"].append(comment)
        thread["total"] = thread["maxResults"] = len(thread["comments"])
        issue["fields"]["updated"] = now
        return comment
