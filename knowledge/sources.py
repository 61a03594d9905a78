"""Knowledge sources as configured: which connector reads each one, and with which secret.

A source is stored in the index with its kind and its non-secret settings (`switchboard
sources add` writes them). Secrets never are: each kind reads its credential from an
environment variable, named by the source's `token_env` (default below), which the
composition root passes in as `credentials`. A missing credential is a `CredentialError`
naming the variable, so the source's status says what to set.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from knowledge.connectors.errors import ConfigurationError, CredentialError
from knowledge.connectors.folder import FolderConnector
from knowledge.index import SourceInfo

SYNC_INTERVAL = 15 * 60  # incremental sync of each source (seconds)
PRUNE_INTERVAL = 24 * 3600  # slim pass removing what was deleted upstream


@dataclass(frozen=True)
class Kind:
    """One kind of source: its settings, and the variable holding its secret."""

    name: str
    settings: tuple[str, ...]
    secret: str  # default environment variable of the credential ("" for none)
    hint: str  # what to do when it is missing or refused


KINDS = {
    "folder": Kind("folder", ("path",), "", ""),
    "confluence": Kind("confluence", ("url", "spaces", "cloud", "attachments", "username"), "CONFLUENCE_TOKEN",
                       "create an API token (Cloud) or a personal access token (Data Center)"),
    "notion": Kind("notion", ("roots", "visibility", "base_url", "min_interval"), "NOTION_TOKEN",
                   "create an internal integration, share the pages with it and copy its secret"),
    "gdrive": Kind("gdrive", ("folders", "drives", "domain", "api_endpoint"), "GOOGLE_APPLICATION_CREDENTIALS",
                   "point it at a service account's JSON key file (or set GOOGLE_ACCESS_TOKEN)"),
}
COMMON = ("interval", "prune_interval", "token_env")
NEEDED = {"folder": ("path",), "confluence": ("url", "spaces"), "notion": (), "gdrive": ()}  # and gdrive: folders or drives


def validate(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A source's settings, checked: unknown kinds and settings are refused with the choices."""
    if kind not in KINDS:
        raise ConfigurationError(f"unknown source kind {kind!r}: choose one of {', '.join(KINDS)}")
    allowed = KINDS[kind].settings + COMMON
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ConfigurationError(f"{kind} sources have no setting {', '.join(unknown)} (known: {', '.join(allowed)})")
    for key in ("interval", "prune_interval"):
        if key in config and (not isinstance(config[key], int) or config[key] < 60):
            raise ConfigurationError(f"{key} must be a whole number of seconds, at least 60")
    missing = [key for key in NEEDED[kind] if not config.get(key)]
    if missing:
        raise ConfigurationError(f"a {kind} source needs {', '.join(missing)}")
    if kind == "gdrive" and not (config.get("folders") or config.get("drives")):
        raise ConfigurationError("a gdrive source needs a folder or a shared drive (--folder or --drive)")
    return dict(config)


def interval(info: SourceInfo, key: str = "interval", default: int | None = None) -> int:
    """A source's `interval` or `prune_interval` in seconds, else `default`, else ours."""
    fallback = default or (SYNC_INTERVAL if key == "interval" else PRUNE_INTERVAL)
    return int(info.config.get(key) or fallback)


def same_folder(info: SourceInfo, path: str | Path) -> bool:
    """Does `info` already read the folder (or file) at `path`? A folder source keeps its path
    in its config: ingesting that path again is an update, another path would replace it."""
    stored = info.config.get("path")
    return info.kind == "folder" and bool(stored) and Path(stored) == Path(path).expanduser().resolve()


def origin(info: SourceInfo) -> str:
    """Where a source's documents come from, for people: a folder's path, else kind and address."""
    config = info.config
    if info.kind == "folder":
        return str(config.get("path") or "a folder")
    where = config.get("url") or config.get("base_url") or ", ".join(config.get("folders", []) or [])
    return f"{info.kind} {where}".strip()


def _secret(info: SourceInfo, credentials: Mapping[str, str], name: str = "") -> str:
    kind = KINDS[info.kind]
    variable = name or info.config.get("token_env") or kind.secret
    value = credentials.get(variable, "").strip()
    if not value:
        raise CredentialError(f"{info.kind} source {info.name}: {variable} is not set: {kind.hint}")
    return value


def build(info: SourceInfo, credentials: Mapping[str, str]) -> Any:
    """The connector that reads `info`, with its credential from `credentials`."""
    config = info.config
    if info.kind == "folder":
        return FolderConnector(config["path"], info.name)
    if info.kind == "confluence":
        from knowledge.connectors.confluence import ConfluenceConnector
        cloud = bool(config.get("cloud", True))
        username = config.get("username") or credentials.get("CONFLUENCE_USER", "")
        return ConfluenceConnector(info.name, url=config["url"], spaces=list(config.get("spaces", [])),
                                   username=username, token=_secret(info, credentials), cloud=cloud,
                                   attachments=bool(config.get("attachments", False)))
    if info.kind == "notion":
        from knowledge.connectors.notion import DEFAULT_BASE_URL, NotionConnector
        return NotionConnector(info.name, token=_secret(info, credentials), roots=list(config.get("roots", [])),
                               base_url=config.get("base_url") or DEFAULT_BASE_URL,
                               visibility=config.get("visibility", "public"),
                               min_interval=float(config.get("min_interval", 0.34)))
    if info.kind == "gdrive":
        from knowledge.connectors.gdrive import GoogleDriveConnector
        options = {"folders": config.get("folders", []), "drives": config.get("drives", []),
                   "domain": config.get("domain", ""), "api_endpoint": config.get("api_endpoint") or None}
        if not config.get("token_env") and credentials.get("GOOGLE_ACCESS_TOKEN") \
                and not credentials.get("GOOGLE_APPLICATION_CREDENTIALS"):
            return GoogleDriveConnector.from_token(info.name, _secret(info, credentials, "GOOGLE_ACCESS_TOKEN"),
                                                   **options)
        key_file = _secret(info, credentials)
        try:
            return GoogleDriveConnector.from_service_account_file(info.name, key_file, **options)
        except (OSError, ValueError) as exc:
            raise CredentialError(f"gdrive source {info.name}: the service account key file can't be read "
                                  f"({type(exc).__name__}): {KINDS['gdrive'].hint}") from None
    raise ConfigurationError(f"unknown source kind {info.kind!r}")
