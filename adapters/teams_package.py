"""The Teams app package: manifests/teams/manifest.json with the configured ids, and its icons.

Teams installs a custom app from a zip holding `manifest.json` and the two icons it names
(192×192 color, 32×32 white-on-transparent outline) at the zip's root. The committed
manifest carries placeholder ids (all zeros), so it validates as it stands;
`build_package` writes the bot's Microsoft App ID (TEAMS_APP_ID) as the app id, the bot
id and the `webApplicationInfo` id (which the resource-specific permission to read
channel messages needs), and optionally a version. `switchboard teams package` calls it;
upload the zip in Teams (Apps → Manage your apps → Upload an app) or the admin center.
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

from bot.errors import ConfigError

MANIFEST_DIR = Path(__file__).resolve().parent.parent / "manifests" / "teams"
PLACEHOLDER = "00000000-0000-0000-0000-000000000000"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")


def manifest(app_id: str, *, version: str = "", source: Path = MANIFEST_DIR) -> dict[str, Any]:
    """The manifest with `app_id` (and `version`) filled in."""
    if not _GUID.match(app_id or "") or app_id == PLACEHOLDER:
        raise ConfigError("TEAMS_APP_ID must be the bot's Microsoft App ID (a GUID) to build the Teams app package")
    if version and not _SEMVER.match(version):
        raise ConfigError(f"the app version must look like 1.2.3, not {version!r}")
    data = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    data["id"] = app_id
    for bot in data.get("bots", []):
        bot["botId"] = app_id
    if "webApplicationInfo" in data:
        data["webApplicationInfo"]["id"] = app_id
    if version:
        data["version"] = version
    return data


def build_package(app_id: str, out: str | Path, *, version: str = "", source: Path = MANIFEST_DIR) -> Path:
    """Write the uploadable app package (a zip) to `out`; its path."""
    data = manifest(app_id, version=version, source=source)
    icons: Mapping[str, str] = data["icons"]
    missing = [name for name in icons.values() if not (source / name).is_file()]
    if missing:
        raise ConfigError(f"{source}: the manifest names icons that aren't there: {', '.join(missing)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("manifest.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        for name in dict.fromkeys(icons.values()):
            package.write(source / name, arcname=name)
    return out
