"""The Google Drive connector: Google Docs (headings kept), PDFs and text files in chosen
folders, followed down their subfolders, or in whole shared drives, through
google-api-python-client (its bundled discovery document, so building it needs no network).

Incremental sync follows Drive's changes feed, because a `modifiedTime` query can't see a
file trashed, deleted or moved away, nor one moved in. The feed is resumed from page tokens,
not from a time, so `poll(since, checkpoint)` takes an optional `checkpoint`, and every
complete `load()` or `poll()` leaves the next one in `last_checkpoint`: an opaque string (the
feed tokens, taken before reading so nothing is missed, and the ids of the folders in scope,
so a folder moved in or out can be told from one renamed). The caller stores it with the
source. With a checkpoint, `poll` yields the files changed since, and `Removed` for those
trashed, deleted, or no longer under the chosen folders or drives. Without one (or one made
for other folders or drives), it falls back to `modifiedTime > since` queries: changed
files only, deletions left to the next full pass, which prunes by absence as usual.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import httplib2
from google.auth.credentials import Credentials
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2 import credentials as oauth2, service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from knowledge.connectors.errors import ConfigurationError, ConnectorError, CredentialError
from knowledge.connectors.gdrive_export import FILE_FIELDS, FOLDER, READABLE, DriveError, Exporter
from knowledge.connectors.retry import RETRIED, Retry, retry_after
from knowledge.documents import Document, Failure, Removed

log = logging.getLogger(__name__)
Item = Document | Failure | Removed

SCOPES = ["https://www.googleapis.com/auth/drive.readonly"]
PAGE_SIZE = 100
SLIM_PAGE_SIZE = 1000  # Drive's maximum; ids only
RATE_LIMITS = {"rateLimitExceeded", "userRateLimitExceeded"}
CREDENTIAL_REASONS = {"authError", "insufficientPermissions", "accessNotConfigured", "domainPolicy"}
HINTS = {"insufficientPermissions": "give the credentials the drive.readonly scope",
         "accessNotConfigured": "enable the Google Drive API in the key's Google Cloud project",
         "domainPolicy": "ask the Google Workspace admin to allow Drive apps"}
TYPES = "(" + " or ".join(f"mimeType = '{m}'" for m in READABLE) + ")"
CHANGE_FIELDS = f"nextPageToken,newStartPageToken,changes(changeType,removed,fileId,file({FILE_FIELDS}))"


def service_account_credentials(key_file: str | Path) -> service_account.Credentials:
    """Credentials from a service account's JSON key file, for read-only Drive access."""
    try:
        return service_account.Credentials.from_service_account_file(str(key_file), scopes=SCOPES)
    except (OSError, ValueError) as exc:  # messages name the file or the missing fields, never the key
        raise CredentialError(f"can't use the Google service account key file {key_file}: {exc}; download a "
                              "new JSON key and update GOOGLE_APPLICATION_CREDENTIALS") from exc


def token_credentials(token: str) -> oauth2.Credentials:
    """Credentials from a plain OAuth access token (not refreshed: it works until it expires)."""
    return oauth2.Credentials(token)


class GoogleDriveConnector:
    """Reads Docs, PDFs and text files from Drive folders or shared drives into source `source`.

    `api_endpoint` is the Google APIs root (https://www.googleapis.com/ unless given, e.g. a
    fake's URL; Drive's own base URL, ending in /drive/v3/, works too); `domain`, when set, is the only domain whose domain-wide sharing makes a
    file public.
    """

    kind = "gdrive"

    def __init__(self, source: str, *, credentials: Credentials, folders: Iterable[str] = (),
                 drives: Iterable[str] = (), domain: str = "", api_endpoint: str | None = None,
                 retry: Retry | None = None):
        self.source, self.credentials, self.domain = source, credentials, domain
        self.folders, self.drives = list(folders), list(drives)
        if not self.folders and not self.drives:
            raise ConfigurationError("choose at least one Google Drive folder or shared drive to read")
        self.retry = retry or Retry()
        self.last_checkpoint: str | None = None
        options = {"api_endpoint": _drive_endpoint(api_endpoint)} if api_endpoint else None
        api = build("drive", "v3", credentials=credentials, client_options=options,
                    static_discovery=True, cache_discovery=False)
        # Each resource builds every method from the discovery document: build them once.
        self.files, self.changes, self.permissions, self.shared_drives = (
            api.files(), api.changes(), api.permissions(), api.drives())
        self.exporter = Exporter(self, source, domain)

    @classmethod
    def from_service_account_file(cls, source: str, key_file: str | Path, **options: Any) -> GoogleDriveConnector:
        return cls(source, credentials=service_account_credentials(key_file), **options)

    @classmethod
    def from_token(cls, source: str, token: str, **options: Any) -> GoogleDriveConnector:
        return cls(source, credentials=token_credentials(token), **options)

    def config(self) -> dict[str, Any]:
        return {"folders": list(self.folders), "drives": list(self.drives), "domain": self.domain}

    # -- the capabilities ------------------------------------------------------------
    def load(self) -> Iterator[Document | Failure]:
        """Every Doc, PDF and text file in scope; then `last_checkpoint` is set."""
        self._check_scope()
        tokens, folders = self._start_tokens(), set()
        for file in self._walk(self.folders, self.drives, folders):
            yield self.exporter.document(file)
        self.last_checkpoint = self._checkpoint(tokens, folders)

    def slim(self) -> Iterator[str]:
        """The ids `load()` yields, from listings only."""
        self._check_scope()
        for file in self._walk(self.folders, self.drives, set(), fields="id,mimeType", page_size=SLIM_PAGE_SIZE):
            yield file["id"]

    def poll(self, since: float, checkpoint: str | None = None) -> Iterator[Item]:
        """What changed since the `checkpoint` (a `last_checkpoint`), else since `since`."""
        self._check_scope()
        state = self._state(checkpoint)
        if state is None:
            tokens, folders = self._start_tokens(), set()
            for file in self._walk(self.folders, self.drives, folders, changed_after=_rfc3339(since)):
                yield self.exporter.document(file)
        else:
            tokens, folders, seen = {}, set(state["folders"]), {}
            for corpus, token in state["tokens"].items():
                for change in self._feed(corpus, token, tokens):
                    yield from self._change(change, folders, seen)
        self.last_checkpoint = self._checkpoint(tokens, folders)

    # -- scope -----------------------------------------------------------------------
    def _check_scope(self) -> None:
        """ConfigurationError, before anything is read, for a folder or drive we can't see."""
        who = getattr(self.credentials, "service_account_email", "") or "the account of the token"
        for folder in self.folders:
            request = self.files.get(fileId=folder, fields="id,mimeType,trashed", supportsAllDrives=True)
            file = self._get(request, f"Google Drive folder {folder} not found: share the folder with {who}")
            if file.get("mimeType") != FOLDER or file.get("trashed"):
                raise ConfigurationError(f"{folder} is not a Google Drive folder (or it is in the trash)")
        for drive in self.drives:
            self._get(self.shared_drives.get(driveId=drive, fields="id"),
                      f"Google shared drive {drive} not found: add {who} to the shared drive as a member")

    def _get(self, request: Any, not_found: str) -> dict:
        try:
            return self.call(request, "checking the chosen folders and drives")
        except DriveError as exc:
            if exc.status == 404:
                raise ConfigurationError(not_found) from exc
            raise

    def _walk(self, roots: Iterable[str], drives: Iterable[str], folders: set[str], *, fields: str = FILE_FIELDS,
              page_size: int = PAGE_SIZE, changed_after: str | None = None, trashed: bool = False) -> Iterator[dict]:
        """The readable files under `roots` (each once), then those in `drives`; every folder
        visited is added to `folders`."""
        queue, seen = deque(roots), set()
        folders.update(queue)
        files = f"({TYPES} and modifiedTime > '{changed_after}')" if changed_after else TYPES
        while queue:
            parent = queue.popleft()
            q = _query(f"'{_quote(parent)}' in parents", "" if trashed else "trashed = false",
                       f"(mimeType = '{FOLDER}' or {files})")
            for file in self._list(f"listing folder {parent}", fields, page_size, q=q, corpora="allDrives"):
                if file["mimeType"] == FOLDER:
                    if file["id"] not in folders:
                        folders.add(file["id"])
                        queue.append(file["id"])
                elif file["mimeType"] in READABLE and file["id"] not in seen:
                    seen.add(file["id"])
                    yield file
        for drive in drives:
            q = _query("trashed = false", TYPES, f"modifiedTime > '{changed_after}'" if changed_after else "")
            for file in self._list(f"listing shared drive {drive}", fields, page_size, q=q, corpora="drive",
                                   driveId=drive):
                if file["mimeType"] in READABLE and file["id"] not in seen:
                    seen.add(file["id"])
                    yield file

    def _list(self, what: str, fields: str, page_size: int, **params: Any) -> Iterator[dict]:
        for page in self.pages(self.files.list, what, fields=f"nextPageToken,files({fields})",
                               pageSize=page_size, includeItemsFromAllDrives=True, supportsAllDrives=True,
                               **params):
            yield from page.get("files", [])

    def _in_scope(self, file: dict, folders: set[str]) -> bool:
        return not file.get("trashed") and (file.get("driveId") in self.drives
                                            or any(p in folders for p in file.get("parents", [])))

    # -- the changes feed ---------------------------------------------------------------
    def _start_tokens(self) -> dict[str, str]:
        corpora = (["user"] if self.folders else []) + [f"drive:{d}" for d in self.drives]
        return {corpus: self._start_token(corpus) for corpus in corpora}

    def _start_token(self, corpus: str) -> str:
        drive = {"driveId": corpus.removeprefix("drive:")} if corpus.startswith("drive:") else {}
        request = self.changes.getStartPageToken(supportsAllDrives=True, **drive)
        return self.call(request, "starting the changes feed")["startPageToken"]

    def _checkpoint(self, tokens: dict[str, str], folders: set[str]) -> str:
        return json.dumps({"roots": self.folders, "drives": self.drives, "tokens": tokens,
                           "folders": sorted(folders)}, separators=(",", ":"))

    def _state(self, checkpoint: str | None) -> dict | None:
        """The checkpoint's state, or None if absent, malformed or for another scope."""
        if not checkpoint:
            return None
        try:
            state = json.loads(checkpoint)
            if state["roots"] == self.folders and state["drives"] == self.drives and state["tokens"]:
                return state
        except (ValueError, KeyError, TypeError):
            pass
        log.warning("%s: checkpoint unusable (malformed, or for other folders or drives); polling by time",
                    self.source)
        return None

    def _feed(self, corpus: str, token: str, tokens: dict[str, str]) -> Iterator[dict]:
        """The changes of `corpus` after `token`; its next start token goes into `tokens`."""
        drive = {"driveId": corpus.removeprefix("drive:")} if corpus.startswith("drive:") else {}
        while token:
            request = self.changes.list(
                pageToken=token, includeRemoved=True, includeItemsFromAllDrives=True, supportsAllDrives=True,
                pageSize=PAGE_SIZE, fields=CHANGE_FIELDS, **drive)
            page = self.call(request, "reading the changes feed")
            yield from page.get("changes", [])
            token = page.get("nextPageToken")
            tokens[corpus] = page.get("newStartPageToken") or tokens.get(corpus, "")

    def _change(self, change: dict, folders: set[str], seen: dict[str, bool]) -> Iterator[Item]:
        file, file_id = change.get("file"), change.get("fileId", "")
        if change.get("changeType", "file") != "file":
            return
        if change.get("removed") or not file:  # deleted, or no longer shared with us
            folders.discard(file_id)
            yield from self._verdict({"id": file_id}, False, seen)
        elif file["mimeType"] == FOLDER:
            yield from self._folder_change(file, folders, seen)
        elif file["mimeType"] in READABLE:
            # A file out of scope may never have been in it: removing an unknown id is a no-op.
            yield from self._verdict(file, self._in_scope(file, folders), seen)

    def _folder_change(self, folder: dict, folders: set[str], seen: dict[str, bool]) -> Iterator[Item]:
        """A folder moved into scope brings its files; one moved out or trashed takes them away."""
        if folder.get("driveId") in self.drives:
            return  # a shared drive's files are in scope wherever they are in it
        was = folder["id"] in folders
        now = folder["id"] in self.folders and not folder.get("trashed") or self._in_scope(folder, folders)
        if now and not was:
            for file in self._walk([folder["id"]], (), folders):
                yield from self._verdict(file, True, seen)
        elif was and not now:
            gone: set[str] = set()
            for file in self._walk([folder["id"]], (), gone, fields="id,mimeType", trashed=True):
                yield from self._verdict(file, False, seen)
            folders -= gone

    def _verdict(self, file: dict, in_scope: bool, seen: dict[str, bool]) -> Iterator[Item]:
        """The file's document, or Removed, unless this poll already said so. (Feeds are in
        change order, so a file's change can come before its folder's: the last word wins.)"""
        if seen.get(file["id"]) != in_scope:
            seen[file["id"]] = in_scope
            yield self.exporter.document(file) if in_scope else Removed(file["id"])

    # -- calls -------------------------------------------------------------------------
    def call(self, request: Any, what: str) -> Any:
        """`request.execute()` under our retry policy (googleapiclient's own is off), with
        Google's errors turned into connector errors a person can act on."""
        try:
            return self.retry.call(lambda: request.execute(num_retries=0), _status_of, what)
        except RefreshError as exc:
            if getattr(exc, "retryable", False):
                raise ConnectorError(f"Google's token service kept failing ({what}): try again later") from exc
            raise CredentialError(self._refused(_short(exc.args[0] if exc.args else exc))) from exc
        except HttpError as exc:
            raise self._http_error(exc, what) from exc
        except (OSError, httplib2.HttpLib2Error, TransportError) as exc:
            raise ConnectorError(f"Google Drive could not be reached ({what}): {type(exc).__name__}: {exc}") from exc

    def pages(self, method: Callable[..., Any], what: str, **params: Any) -> Iterator[dict]:
        """Every page of a listing, following nextPageToken."""
        token = None
        while True:
            page = self.call(method(**params, **({"pageToken": token} if token else {})), what)
            yield page
            token = page.get("nextPageToken")
            if not token:
                return

    def _http_error(self, exc: HttpError, what: str) -> ConnectorError:
        status, reason, message = exc.resp.status, _reason(exc), _short(_message(exc))
        if status == 401 or (status == 403 and reason in CREDENTIAL_REASONS):
            return CredentialError(self._refused(message, reason))
        if status in RETRIED or reason in RATE_LIMITS:
            return ConnectorError(f"Google Drive kept failing ({what}): HTTP {status} {message} "
                                  f"after {self.retry.attempts} attempts; try again later")
        return DriveError(status, f"{what}: HTTP {status} {message}")

    def _refused(self, detail: str, reason: str = "") -> str:
        if isinstance(self.credentials, service_account.Credentials):
            who = f"the service account key of {self.credentials.service_account_email}"
            action = "re-create the key and update GOOGLE_APPLICATION_CREDENTIALS"
        else:
            who, action = "the OAuth access token", "sign in again and update the token"
        return f"Google rejected {who} ({detail}): {HINTS.get(reason, action)}"


def _drive_endpoint(root: str) -> str:
    """Drive's base URL under a Google APIs root (also accepted: that base URL itself)."""
    root = root.rstrip("/")
    return (root if root.endswith("/drive/v3") else root + "/drive/v3") + "/"


def _status_of(exc: BaseException) -> tuple[int | None, float | None]:
    if isinstance(exc, HttpError):
        status = 429 if exc.resp.status == 403 and _reason(exc) in RATE_LIMITS else exc.resp.status
        return status, retry_after(exc.resp.get("retry-after"))
    if isinstance(exc, (OSError, httplib2.HttpLib2Error, TransportError)):
        return 0, None
    return None, None


def _error_body(exc: HttpError) -> dict:
    try:
        body = json.loads(exc.content)
        return body["error"] if isinstance(body.get("error"), dict) else {}
    except (ValueError, AttributeError):
        return {}


def _reason(exc: HttpError) -> str:
    errors = _error_body(exc).get("errors") or [{}]
    return str(errors[0].get("reason", ""))


def _message(exc: HttpError) -> str:
    return str(_error_body(exc).get("message") or exc.resp.reason or "")


def _short(text: object, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _query(*parts: str) -> str:
    return " and ".join(p for p in parts if p)


def _rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
