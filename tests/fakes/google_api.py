"""A fake Google Drive v3 API and OAuth token endpoint, speaking the REST shapes
google-api-python-client and google-auth use.

Serve it with ``serve(fake.app())``, set ``fake.url`` to the URL, and point the client at it
with ``client_options={"api_endpoint": fake.url + "/drive/v3/"}``. ``service_account_key()``
makes a key file whose ``token_uri`` is the fake's ``/token``, where the signed JWT assertion
is checked against the key's public key before an access token is issued; ``token`` is a
ready plain access token. Every API call needs a Bearer token the fake issued.

Served: ``files`` (list with ``q``/``fields``/``pageToken``/``pageSize``/``corpora``/
``driveId``), ``files/{id}`` (``alt=media`` downloads), ``files/{id}/export``,
``files/{id}/permissions``, ``changes/startPageToken``, ``changes``, ``drives``. ``q``
understands what a connector needs: ``'id' in parents``, ``trashed``, ``mimeType`` and
``modifiedTime`` comparisons, ``and``/``or``/``not`` and parentheses. ``fields`` is honoured
(nested selections too), so a field not asked for is not returned. As in Drive,
shared-drive items need ``supportsAllDrives``/``includeItemsFromAllDrives`` and list no
``permissions`` or ``owners``. Errors are ``{"error": {"code", "message", "errors":
[{"reason", "domain"}], "status"}}``.

Tests change the drive with ``add_folder``/``add_doc``/``add_file``/``edit``/``trash``/
``delete``/``move``/``share`` (each bumps the fake clock by a second and logs a change),
script failures with ``fail`` and ``revoke``, and read ``calls``. ``generate(n)`` builds n
realistic Docs (headings, lists, tables) for benchmarks. Thread-safe.
"""
from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import random
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
SCOPE = "https://www.googleapis.com/auth/drive.readonly"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
EPOCH = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc).timestamp()
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
MESSAGES = {"authError": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                          "or other valid authentication credential.",
            "insufficientPermissions": "Request had insufficient authentication scopes.",
            "rateLimitExceeded": "Rate Limit Exceeded", "userRateLimitExceeded": "User Rate Limit Exceeded",
            "backendError": "Backend Error", "exportSizeLimitExceeded": "This file is too large to be exported."}
DEFAULT_OWNER = {"kind": "drive#user", "displayName": "Ada Lovelace", "emailAddress": "ada@example.com"}


class ApiError(Exception):
    """Raised inside a handler to answer with Google's error shape."""

    def __init__(self, code: int, message: str, reason: str, domain: str = "global", retry_after: int | None = None):
        super().__init__(message)
        self.code, self.message, self.reason, self.domain, self.retry_after = code, message, reason, domain, retry_after

    def response(self) -> JSONResponse:
        body = {"error": {"code": self.code, "message": self.message, "status": STATUS.get(self.code, "UNKNOWN"),
                          "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}]}}
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        return JSONResponse(body, status_code=self.code, headers=headers)


@dataclass
class Call:
    method: str  # "files.list", "files.export", "changes.list", "token", ...
    params: dict[str, str]
    status: int = 0


@dataclass
class FakeFile:
    id: str
    name: str
    mimeType: str
    parents: list[str]
    content: bytes = b""
    modified: float = EPOCH
    trashed: bool = False
    drive: str | None = None
    owners: list[dict] = field(default_factory=lambda: [dict(DEFAULT_OWNER)])
    permissions: list[dict] = field(default_factory=list)
    can_share: bool = True  # False: we are only a reader, so Drive hides the permissions from us

    def resource(self) -> dict[str, Any]:
        kind = {FOLDER: "drive/folders/{}", DOC: "document/d/{}/edit"}.get(self.mimeType, "file/d/{}/view")
        host = "docs" if self.mimeType == DOC else "drive"
        out: dict[str, Any] = {
            "kind": "drive#file", "id": self.id, "name": self.name, "mimeType": self.mimeType,
            "parents": list(self.parents), "trashed": self.trashed, "modifiedTime": _rfc3339(self.modified),
            "webViewLink": f"https://{host}.google.com/{kind.format(self.id)}?usp=drivesdk"}
        if self.mimeType not in (FOLDER, DOC):
            out["size"] = str(len(self.content))
        if self.drive:
            out["driveId"] = self.drive
        else:  # as in Drive, not listed for shared-drive items
            out["owners"] = self.owners
            out.update({"permissions": self.permissions} if self.can_share else {})
        return out


class FakeGoogle:
    """In-memory Drive state plus the HTTP endpoints; see the module docstring."""

    def __init__(self, max_page_size: int = 1000):
        self.url = ""  # set to the served URL by whoever serves the app
        self.max_page_size = max_page_size
        self.markdown_export = True  # False: exporting Docs as text/markdown answers 400, as before 2024
        self.files: dict[str, FakeFile] = {}
        self.drives: dict[str, str] = {}
        self.calls: list[Call] = []
        self.clock = EPOCH
        self._lock = threading.RLock()
        self._keys: dict[str, tuple[str, str]] = {}  # private_key_id -> (public PEM, client_email)
        self._tokens: set[str] = set()
        self._changes: list[tuple[int, str, str | None]] = []  # (number, file id, shared drive id)
        self._failures: list[list[Any]] = []  # [times left or None, status, retry_after, reason, match]
        self._ids = 0
        self.token = self.issue_token()  # a plain OAuth access token the API accepts

    # ---- wiring ----------------------------------------------------------------------------------
    def app(self) -> Starlette:
        routes = [Route("/token", self.token_endpoint, methods=["POST"])]
        for path, name in (("/drive/v3/files", "files.list"), ("/drive/v3/files/{id}", "files.get"),
                           ("/drive/v3/files/{id}/export", "files.export"),
                           ("/drive/v3/files/{id}/permissions", "permissions.list"),
                           ("/drive/v3/changes/startPageToken", "changes.getStartPageToken"),
                           ("/drive/v3/changes", "changes.list"), ("/drive/v3/drives", "drives.list"),
                           ("/drive/v3/drives/{id}", "drives.get")):
            routes.append(Route(path, functools.partial(self.endpoint, name), methods=["GET"]))
        return Starlette(routes=routes)

    # ---- credentials -------------------------------------------------------------------------------
    def issue_token(self) -> str:
        token = "ya29." + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(token)
        return token

    def service_account_key(self, email: str = "switchboard@support-kb.iam.gserviceaccount.com") -> dict[str, str]:
        """A service-account key (the JSON Google hands out) whose token_uri is this fake.
        (Swap in `rsa_private_key(1)` as its private_key to forge a signature.)"""
        private, public = rsa_key_pair(0)
        key_id = secrets.token_hex(20)
        with self._lock:
            self._keys[key_id] = (public, email)
        return {"type": "service_account", "project_id": "support-kb", "private_key_id": key_id,
                "private_key": private, "client_email": email, "client_id": "1234567890",
                "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": f"{self.url}/token"}

    def revoke(self) -> None:
        """Every key deleted and every token revoked: grants are refused, API calls answer 401."""
        with self._lock:
            self._keys.clear()
            self._tokens.clear()

    def expire_tokens(self) -> None:
        """Access tokens expire (keys stay valid, so a service account gets a new one)."""
        with self._lock:
            self._tokens.clear()

    # ---- failures and calls ------------------------------------------------------------------------
    def fail(self, status: int = 429, times: int | None = 1, retry_after: int | None = None, reason: str = "",
             match: str = "") -> None:
        """The next `times` API calls (for ever if None) whose path contains `match` answer `status`."""
        reason = reason or {429: "rateLimitExceeded", 403: "forbidden", 404: "notFound"}.get(status, "backendError")
        with self._lock:
            self._failures.append([times, status, retry_after, reason, match])

    def recover(self) -> None:
        """Scripted failures end."""
        with self._lock:
            self._failures.clear()

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    # ---- changing the drive --------------------------------------------------------------------------
    def add_drive(self, name: str) -> str:
        with self._lock:
            drive_id = self._new_id("0A")
            self.drives[drive_id] = name
            return drive_id

    def add_folder(self, name: str, parent: str | None = None) -> str:
        return self._add(name, FOLDER, b"", parent)

    def add_doc(self, name: str, markdown: str, parent: str | None = None, **extra: Any) -> str:
        """A Google Doc whose content is `markdown` (exported as is, or rendered as Docs' HTML)."""
        return self._add(name, DOC, markdown.encode(), parent, **extra)

    def add_file(self, name: str, mime_type: str, content: bytes, parent: str | None = None, **extra: Any) -> str:
        return self._add(name, mime_type, content, parent, **extra)

    def edit(self, file_id: str, content: str | bytes | None = None, name: str | None = None) -> None:
        with self._lock:
            file = self.files[file_id]
            if content is not None:
                file.content = content.encode() if isinstance(content, str) else content
            file.name = name or file.name
            self._touch(file, modified=True)

    def trash(self, file_id: str) -> None:
        """Trash a file, or a folder and everything under it (as Drive does)."""
        with self._lock:
            for file in self._tree(file_id):
                file.trashed = True
                self._touch(file)

    def delete(self, file_id: str) -> None:
        """Delete for ever (a folder with everything under it): the changes feed reports removals."""
        with self._lock:
            for file in self._tree(file_id):
                del self.files[file.id]
                self._touch(file)

    def move(self, file_id: str, parent: str) -> None:
        with self._lock:
            file, old_drive = self.files[file_id], self.files[file_id].drive
            file.parents = [parent]
            file.drive = self.files[parent].drive if parent in self.files else (parent if parent in self.drives else None)
            self._touch(file)
            if old_drive != file.drive:  # the drive it left logs it too
                self._changes.append((len(self._changes) + 1, file.id, old_drive))

    def share(self, file_id: str, type: str, role: str = "reader", domain: str = "", email: str = "") -> None:
        """Add a permission: type "anyone", "domain" (with `domain`), "user" or "group" (with `email`)."""
        permission = {"kind": "drive#permission", "id": secrets.token_hex(6), "type": type, "role": role}
        permission.update({"domain": domain} if domain else {})
        permission.update({"emailAddress": email} if email else {})
        permission.update({"allowFileDiscovery": False} if type in ("anyone", "domain") else {})
        with self._lock:
            self.files[file_id].permissions.append(permission)
            self._touch(self.files[file_id])

    def unshare(self, file_id: str) -> None:
        """Back to the owner alone."""
        with self._lock:
            file = self.files[file_id]
            file.permissions = [p for p in file.permissions if p["role"] == "owner"]
            self._touch(file)

    def generate(self, n: int, parent: str | None = None, per_folder: int = 100, seed: int = 0) -> str:
        """n realistic help-centre Docs in subfolders of `per_folder`, under a new folder
        (inside `parent` if given); returns that folder's id."""
        rng = random.Random(seed)
        root = self.add_folder("Help centre", parent)
        folder = root
        for i in range(n):
            if i % per_folder == 0:
                folder = self.add_folder(f"Articles {i // per_folder + 1}", root)
            topic = TOPICS[i % len(TOPICS)]
            self.add_doc(f"{topic.capitalize()} guide {i + 1}", _article(rng, topic, i + 1), folder)
        return root

    # ---- internals: state --------------------------------------------------------------------------
    def _new_id(self, prefix: str = "1") -> str:
        self._ids += 1
        digest = hashlib.sha256(f"{self._ids}".encode()).digest()
        return prefix + base64.urlsafe_b64encode(digest).decode()[:33 - len(prefix)]

    def _add(self, name: str, mime_type: str, content: bytes, parent: str | None, **extra: Any) -> str:
        with self._lock:
            if parent is not None and parent not in self.files and parent not in self.drives:
                raise KeyError(f"no folder or drive {parent}")
            drive = parent if parent in self.drives else (self.files[parent].drive if parent else None)
            file = FakeFile(self._new_id(), name, mime_type, [parent or "0AMyDriveRoot"], content, drive=drive,
                            **extra)
            if not drive and not file.permissions:
                file.permissions = [{"kind": "drive#permission", "id": "owner", "type": "user", "role": "owner",
                                     "emailAddress": file.owners[0]["emailAddress"]}]
            self.files[file.id] = file
            self._touch(file, modified=True)
            return file.id

    def _touch(self, file: FakeFile, modified: bool = False) -> None:
        self.clock += 1
        if modified:
            file.modified = self.clock
        self._changes.append((len(self._changes) + 1, file.id, file.drive))

    def _tree(self, file_id: str) -> list[FakeFile]:
        children: dict[str, list[str]] = {}
        for f in self.files.values():
            for parent in f.parents:
                children.setdefault(parent, []).append(f.id)
        found, queue = [], [file_id]
        while queue:
            found.append(self.files[queue.pop()])
            queue += children.get(found[-1].id, [])
        return found

    # ---- HTTP ----------------------------------------------------------------------------------------
    async def token_endpoint(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        call = Call("token", {k: v for k, v in form.items() if k != "assertion"})
        with self._lock:
            self.calls.append(call)
            status, body = self._grant(form, str(request.url.replace(query="")))
            call.status = status
        return JSONResponse(body, status_code=status)

    def _grant(self, form: dict[str, str], audience: str) -> tuple[int, dict]:
        from google.auth import jwt

        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."}
        try:
            header = jwt.decode_header(form.get("assertion", ""))
            public, email = self._keys[header.get("kid", "")]
            # google-auth addresses the assertion to Google's token URL whatever token_uri says
            claims = jwt.decode(form["assertion"], certs={header["kid"]: public},
                                audience=[GOOGLE_TOKEN_URL, audience])
        except (KeyError, ValueError):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if claims.get("iss") != email or SCOPE not in str(claims.get("scope", "")).split():
            return 400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope or ID token audience."}
        token = self.issue_token()
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    async def endpoint(self, method: str, request: Request) -> Response:
        params = dict(request.query_params)
        if method == "files.get" and params.get("alt") == "media":
            method = "files.get_media"
        call = Call(method, params)
        with self._lock:
            self.calls.append(call)
            try:
                self._check(request)
                handler: Callable[..., Any] = getattr(self, "_" + method.replace(".", "_"))
                result = handler(params, *request.path_params.values())
                response = (JSONResponse(result) if isinstance(result, dict)
                            else Response(result[1], media_type=result[0]))
            except ApiError as err:
                response = err.response()
            call.status = response.status_code
        return response

    def _check(self, request: Request) -> None:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self._tokens:
            raise ApiError(401, MESSAGES["authError"], "authError")
        for failure in self._failures:
            times, status, retry_after, reason, match = failure
            if match in request.url.path and times != 0:
                failure[0] = None if times is None else times - 1
                domain = "usageLimits" if "RateLimit" in reason or status == 429 else "global"
                raise ApiError(status, MESSAGES.get(reason, f"Scripted failure ({reason})."), reason, domain, retry_after)

    def _visible(self, file_id: str, params: dict[str, str]) -> FakeFile:
        file = self.files.get(file_id)
        if file is None or (file.drive and params.get("supportsAllDrives") != "true"):
            raise ApiError(404, f"File not found: {file_id}.", "notFound")
        return file

    @staticmethod
    def _page(items: list, params: dict[str, str], limit: int) -> tuple[list, str | None]:
        start = int(params.get("pageToken") or 0)
        size = min(int(params.get("pageSize") or 100), limit)
        end = start + size
        return items[start:end], (str(end) if end < len(items) else None)

    # ---- Drive methods -------------------------------------------------------------------------------
    def _files_list(self, params: dict[str, str]) -> dict:
        match = parse_query(params.get("q", ""))
        corpora, drive = params.get("corpora", "user"), params.get("driveId")
        all_drives = params.get("includeItemsFromAllDrives") == "true"
        if corpora in ("drive", "allDrives") and not (all_drives and params.get("supportsAllDrives") == "true"):
            raise ApiError(403, "The attempted action requires shared drive support to be enabled.",
                           "teamDrivesSupportRequired")
        if corpora == "drive" and drive not in self.drives:
            raise ApiError(404, f"Shared drive not found: {drive}", "notFound")
        found = [f for f in self.files.values() if match(f) and (f.drive == drive if corpora == "drive"
                                                                  else all_drives or not f.drive)]
        page, token = self._page(sorted(found, key=lambda f: f.id), params, self.max_page_size)
        body: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": False,
                                "files": [f.resource() for f in page]}
        if token:
            body["nextPageToken"] = token
        return select(body, params.get("fields") or "kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)")

    def _files_get(self, params: dict[str, str], file_id: str) -> dict:
        return select(self._visible(file_id, params).resource(), params.get("fields") or "kind,id,name,mimeType")

    def _files_get_media(self, params: dict[str, str], file_id: str) -> tuple[str, bytes]:
        file = self._visible(file_id, params)
        if file.mimeType.startswith("application/vnd.google-apps."):
            raise ApiError(403, "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
                           "fileNotDownloadable")
        return file.mimeType, file.content

    def _files_export(self, params: dict[str, str], file_id: str) -> tuple[str, bytes]:
        file = self._visible(file_id, {"supportsAllDrives": "true"})
        mime = params.get("mimeType", "")
        if file.mimeType != DOC:
            raise ApiError(403, "Export only supports Docs Editors files.", "fileNotExportable")
        markdown = file.content.decode()
        if mime == "text/markdown" and self.markdown_export:
            return mime, file.content
        if mime == "text/html":
            return mime, render_docs_html(file.name, markdown).encode()
        if mime == "text/plain":
            return mime, re.sub(r"^#+ |^\|.*\|$", "", markdown, flags=re.M).encode()
        raise ApiError(400, "The requested conversion is not supported.", "badRequest")

    def _permissions_list(self, params: dict[str, str], file_id: str) -> dict:
        file = self._visible(file_id, params)
        if not file.can_share:
            raise ApiError(403, "The user does not have sufficient permissions for this file.",
                           "insufficientFilePermissions")
        members = [{"kind": "drive#permission", "id": "members", "type": "group", "role": "organizer",
                    "emailAddress": "support-team@example.com"}] if file.drive else []
        return select({"kind": "drive#permissionList", "permissions": members + file.permissions},
                      params.get("fields") or "kind,permissions(kind,id,type,role)")

    def _changes_getStartPageToken(self, params: dict[str, str]) -> dict:
        return {"kind": "drive#startPageToken", "startPageToken": str(len(self._changes) + 1)}

    def _changes_list(self, params: dict[str, str]) -> dict:
        if not params.get("pageToken", "").isdigit():
            raise ApiError(400, "Invalid Value", "invalid")
        drive = params.get("driveId")
        if drive and drive not in self.drives:
            raise ApiError(404, f"Shared drive not found: {drive}", "notFound")
        include_drives = params.get("includeItemsFromAllDrives") == "true"
        latest: dict[str, int] = {}  # as in Drive, only the latest change of each file is listed
        for number, file_id, file_drive in self._changes[int(params["pageToken"]) - 1:]:
            if (file_drive == drive) if drive else (not file_drive or include_drives):
                latest[file_id] = number
        entries = sorted((n, i) for i, n in latest.items())[:min(int(params.get("pageSize") or 100),
                                                                 self.max_page_size)]
        body: dict[str, Any] = {"kind": "drive#changeList", "changes": [self._change(i, drive) for _, i in entries]}
        if entries and len(entries) < len(latest):
            body["nextPageToken"] = str(entries[-1][0] + 1)
        else:
            body["newStartPageToken"] = str(len(self._changes) + 1)
        return select(body, params.get("fields") or "kind,nextPageToken,newStartPageToken,changes")

    def _change(self, file_id: str, drive: str | None) -> dict:
        file = self.files.get(file_id)
        change: dict[str, Any] = {"kind": "drive#change", "changeType": "file", "fileId": file_id,
                                  "time": _rfc3339(self.clock),
                                  "removed": file is None or bool(drive and file.drive != drive)}
        if not change["removed"]:
            change["file"] = file.resource()  # type: ignore[union-attr]
        return change

    def _drives_list(self, params: dict[str, str]) -> dict:
        return {"kind": "drive#driveList", "drives": [{"kind": "drive#drive", "id": i, "name": n}
                                                      for i, n in self.drives.items()]}

    def _drives_get(self, params: dict[str, str], drive_id: str) -> dict:
        if drive_id not in self.drives:
            raise ApiError(404, f"Shared drive not found: {drive_id}", "notFound")
        return select({"kind": "drive#drive", "id": drive_id, "name": self.drives[drive_id]},
                      params.get("fields") or "kind,id,name")


# ---- fields= ---------------------------------------------------------------------------------------

def _parse_fields(spec: str) -> dict[str, Any]:
    """ "a,b(c,d(e))" -> {"a": None, "b": {"c": None, "d": {"e": None}}} """
    tree: dict[str, Any] = {}
    stack, name = [tree], ""
    for ch in spec + ",":
        if ch in ",()":
            name = name.strip()
            if ch == "(":
                stack[-1][name] = {}
                stack.append(stack[-1][name])
            elif name:
                stack[-1].setdefault(name.split("/")[0], None)
            if ch == ")":
                stack.pop()
            name = ""
        else:
            name += ch
    return tree


def select(value: Any, spec: str | dict | None) -> Any:
    """`value` with only the fields `spec` (Drive's `fields` syntax) asks for."""
    tree = _parse_fields(spec) if isinstance(spec, str) else spec
    if tree is None or "*" in tree:
        return value
    if isinstance(value, list):
        return [select(v, tree) for v in value]
    if isinstance(value, dict):
        return {k: select(v, tree[k]) for k, v in value.items() if k in tree}
    return value


# ---- q= ----------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*('(?:[^'\\]|\\.)*'|\(|\)|!=|<=|>=|=|<|>|[A-Za-z]+)")
_FIELDS = {"name": lambda f: f.name, "mimeType": lambda f: f.mimeType, "trashed": lambda f: f.trashed,
           "modifiedTime": lambda f: f.modified}
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b, ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "contains": lambda a, b: str(b) in str(a)}


def parse_query(q: str) -> Callable[[FakeFile], bool]:
    """A predicate for Drive's query language, as much of it as connectors use."""
    tokens, pos = [], 0
    while pos < len(q.rstrip()):
        match = _TOKEN.match(q, pos)
        if not match:
            raise ApiError(400, "Invalid Value", "invalid")
        tokens.append(match.group(1))
        pos = match.end()
    if not tokens:
        return lambda f: True
    predicate, rest = _or(tokens)
    if rest:
        raise ApiError(400, "Invalid Value", "invalid")
    return predicate


def _or(tokens: list[str]) -> tuple[Callable, list[str]]:
    left, tokens = _and(tokens)
    while tokens and tokens[0] == "or":
        right, tokens = _and(tokens[1:])
        left = (lambda a, b: lambda f: a(f) or b(f))(left, right)
    return left, tokens


def _and(tokens: list[str]) -> tuple[Callable, list[str]]:
    left, tokens = _not(tokens)
    while tokens and tokens[0] == "and":
        right, tokens = _not(tokens[1:])
        left = (lambda a, b: lambda f: a(f) and b(f))(left, right)
    return left, tokens


def _not(tokens: list[str]) -> tuple[Callable, list[str]]:
    if tokens and tokens[0] == "not":
        inner, rest = _not(tokens[1:])
        return (lambda f: not inner(f)), rest
    if tokens and tokens[0] == "(":
        inner, rest = _or(tokens[1:])
        if not rest or rest[0] != ")":
            raise ApiError(400, "Invalid Value", "invalid")
        return inner, rest[1:]
    return _term(tokens)


def _term(tokens: list[str]) -> tuple[Callable, list[str]]:
    if len(tokens) >= 3 and tokens[0].startswith("'") and tokens[1] == "in" and tokens[2] == "parents":
        parent = _literal(tokens[0])
        return (lambda f: parent in f.parents), tokens[3:]
    if len(tokens) < 3 or tokens[0] not in _FIELDS or tokens[1] not in _OPS:
        raise ApiError(400, "Invalid Value", "invalid")
    name, op, value = tokens[0], _OPS[tokens[1]], _literal(tokens[2])
    if name == "modifiedTime":
        when = dt.datetime.fromisoformat(str(value))
        value = (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp()
    return (lambda f: op(_FIELDS[name](f), value)), tokens[3:]


def _literal(token: str) -> Any:
    if token in ("true", "false"):
        return token == "true"
    if not token.startswith("'"):
        raise ApiError(400, "Invalid Value", "invalid")
    return re.sub(r"\\(.)", r"\1", token[1:-1])


# ---- content -------------------------------------------------------------------------------------------

def render_docs_html(title: str, markdown: str) -> str:
    """Markdown rendered the way Docs' HTML export looks: class soup, one-level lists as
    sibling lists whose class ends in the nesting level, tables of paragraphs."""
    out = [f'<html><head><meta content="text/html; charset=UTF-8" http-equiv="content-type">'
           f'<style type="text/css">.c1{{color:#000}}</style><title>{_esc(title)}</title></head>'
           '<body class="c5 doc-content">']
    for block in re.split(r"\n\s*\n", markdown.strip()):
        lines = block.split("\n")
        heading = re.match(r"(#{1,6}) (.*)", lines[0])
        if heading:
            n = len(heading.group(1))
            out.append(f'<h{n} class="c4" id="h.{n}x"><span class="c2">{_esc(heading.group(2))}</span></h{n}>')
        elif all(re.match(r"\s*(-|\*|\d+\.) ", line) for line in lines):
            for line in lines:
                level, tag = (len(line) - len(line.lstrip())) // 2, "ol" if re.match(r"\s*\d", line) else "ul"
                text = re.sub(r"\s*(-|\*|\d+\.) ", "", line, count=1)
                out.append(f'<{tag} class="c6 lst-kix_list_1-{level} start"><li class="c1 li-bullet-0">'
                           f'<span class="c0">{_esc(text)}</span></li></{tag}>')
        elif lines[0].startswith("|"):
            rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines
                    if not re.fullmatch(r"\|[\s:|-]+\|", line.strip())]
            cells = "".join("<tr>" + "".join(f'<td class="c7"><p class="c1"><span>{_esc(c)}</span></p></td>'
                                             for c in row) + "</tr>" for row in rows)
            out.append(f'<table class="c8"><tbody>{cells}</tbody></table>')
        else:
            out.append(f'<p class="c1"><span class="c0">{_esc(" ".join(lines))}</span></p>')
    return "".join(out) + "</body></html>"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


TOPICS = ["shipping", "returns", "billing", "accounts", "warranty", "subscriptions", "gift cards", "privacy"]
_COUNTRIES = ["Belgium", "France", "Germany", "Spain", "Italy", "Netherlands", "Portugal", "Austria"]


def _article(rng: random.Random, topic: str, n: int) -> str:
    countries = rng.sample(_COUNTRIES, 3)
    rows = "\n".join(f"| {c} | {rng.randint(2, 9)} days | {rng.randint(3, 15)} EUR |" for c in countries)
    return (f"# {topic.capitalize()} guide {n}\n\nThis article explains {topic} for order {n}: what to expect, "
            f"how long it takes and who to contact when something goes wrong.\n\n"
            f"## Before you start\n\n- Have your order number ready\n- Check the email we sent you\n"
            f"  - It contains the tracking link\n\n"
            f"## Steps\n\n1. Open your account\n2. Choose {topic}\n3. Follow the instructions on screen\n\n"
            f"## By country\n\n| Country | Delay | Fee |\n| --- | --- | --- |\n{rows}\n\n"
            f"## Still stuck?\n\nWrite to support with reference {topic[:3].upper()}-{n:05d}; we answer within "
            f"{rng.randint(1, 3)} business days.\n")


def rsa_private_key(slot: int) -> str:
    return rsa_key_pair(slot)[0]


@functools.cache
def rsa_key_pair(slot: int) -> tuple[str, str]:
    """One RSA key pair per slot and process (generating one takes a while): private PKCS#8, public PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def _rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
