"""The Teams app manifest and package: the manifest meets the required fields and formats of
its schema (v1.29) and agrees with the adapter, its icons are what Teams asks for, and
`build_package` writes a zip Teams can open, with the configured ids."""
from __future__ import annotations

import copy
import json
import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator

import pytest

from adapters.teams import COMMANDS
from adapters.teams_package import MANIFEST_DIR, PLACEHOLDER, build_package, manifest
from bot.errors import ConfigError
from bot.intents import wants_human

APP_ID = "2f1f5a0e-3c55-4a1b-9d2e-6a1d0f7c9b10"
SCHEMA = "https://developer.microsoft.com/json-schemas/teams/v1.29/MicrosoftTeams.schema.json"
# From that schema: the "required" lists of the objects the manifest uses, and their formats.
REQUIRED = {
    "": ["manifestVersion", "version", "id", "developer", "name", "description", "icons", "accentColor"],
    "developer": ["name", "websiteUrl", "privacyUrl", "termsOfUseUrl"],
    "name": ["short"],
    "description": ["short", "full"],
    "icons": ["outline", "color"],
    "bots[]": ["botId", "scopes"],
    "bots[].commandLists[]": ["scopes", "commands"],
    "bots[].commandLists[].commands[]": ["title"],
    "authorization.permissions.resourceSpecific[]": ["name", "type"],
}
GUID = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
FORMATS = {"id": GUID, "bots[].botId": GUID, "webApplicationInfo.id": GUID, "accentColor": r"^#[0-9a-fA-F]{6}$",
           "version": r"^([0-9]|[1-9]+[0-9]*)\.([0-9]|[1-9]+[0-9]*)\.([0-9]|[1-9]+[0-9]*)$",
           "developer.websiteUrl": "^[Hh][Tt][Tt][Pp][Ss]?://", "developer.privacyUrl": "^[Hh][Tt][Tt][Pp][Ss]?://",
           "developer.termsOfUseUrl": "^[Hh][Tt][Tt][Pp][Ss]?://"}
LENGTHS = {"name.short": 30, "name.full": 100, "description.short": 80, "description.full": 4000,
           "developer.name": 32, "bots[].commandLists[].commands[].title": 128}
ENUMS = {"bots[].scopes[]": {"team", "personal", "groupChat", "copilot"},
         "bots[].commandLists[].scopes[]": {"team", "personal", "groupChat", "copilot"},
         "permissions[]": {"identity", "messageTeamMembers"},
         "authorization.permissions.resourceSpecific[].type": {"Application", "Delegated"}}
MAX_ITEMS = {"bots[].commandLists[].commands": 12, "bots[].commandLists": 3, "bots[].scopes": 4}


def at(data: Any, path: str) -> Iterator[Any]:
    """Every value at `path` ("a.b[].c": each item of the list a.b, then its c); none if absent."""
    if not path:
        yield data
        return
    head, _, rest = path.partition(".")
    each = head.endswith("[]")
    value = data.get(head.removesuffix("[]"), None) if isinstance(data, dict) else None
    for item in (value or []) if each else ([] if value is None else [value]):
        yield from at(item, rest)


def problems(data: dict[str, Any]) -> list[str]:
    found = [f"{path or 'manifest'}: missing {key}" for path, keys in REQUIRED.items()
             for obj in at(data, path) for key in keys if key not in obj]
    found += [f"{path}: {value!r} doesn't match {pattern}" for path, pattern in FORMATS.items()
              for value in at(data, path) if not re.search(pattern, str(value))]
    found += [f"{path}: longer than {limit}" for path, limit in LENGTHS.items()
              for value in at(data, path) if len(value) > limit]
    found += [f"{path}: {value!r} isn't one of {sorted(allowed)}" for path, allowed in ENUMS.items()
              for value in at(data, path) if value not in allowed]
    found += [f"{path}: more than {limit} items" for path, limit in MAX_ITEMS.items()
              for value in at(data, path) if len(value) > limit]
    if data.get("$schema") != SCHEMA or data.get("manifestVersion") != "1.29":
        found.append("not the v1.29 schema")
    return found


def committed() -> dict[str, Any]:
    return json.loads((MANIFEST_DIR / "manifest.json").read_text())


def test_the_manifest_meets_its_schema():
    assert problems(committed()) == []


@pytest.mark.parametrize("break_it, complaint", [
    (lambda m: m.pop("accentColor"), "manifest: missing accentColor"),
    (lambda m: m["bots"][0].pop("scopes"), "bots[]: missing scopes"),
    (lambda m: m["bots"][0].update(botId="switchboard-bot"), "bots[].botId"),
    (lambda m: m["name"].update(short="Switchboard, the support assistant"), "name.short: longer than 30"),
    (lambda m: m["bots"][0]["scopes"].append("meeting"), "bots[].scopes[]: 'meeting'"),
    (lambda m: m["developer"].update(privacyUrl="example.com/privacy"), "developer.privacyUrl"),
])
def test_the_check_catches_what_teams_would_refuse(break_it, complaint):
    broken = copy.deepcopy(committed())
    break_it(broken)
    assert any(p.startswith(complaint) for p in problems(broken)), problems(broken)


def test_commands_and_scopes_agree_with_the_adapter():
    [bot] = committed()["bots"]
    assert bot["scopes"] == ["personal", "team", "groupChat"]
    [commands] = bot["commandLists"]
    titles = {c["title"] for c in commands["commands"]}
    assert set(COMMANDS) <= titles and titles - set(COMMANDS) == {"human"} and wants_human("human")
    assert committed()["authorization"]["permissions"]["resourceSpecific"] == [
        {"name": "ChannelMessage.Read.Group", "type": "Application"}]  # follow-ups in reply chains, agents' replies


def pixels(data: bytes) -> tuple[int, int, list[tuple[int, ...]]]:
    """(width, height, RGBA pixels) of an 8-bit RGBA PNG with unfiltered rows (as ours are written)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, kind = struct.unpack(">IIBB", data[16:26])
    assert (depth, kind) == (8, 6)
    chunks, i = b"", 8
    while i < len(data):
        length, name = struct.unpack(">I4s", data[i:i + 8])
        chunks += data[i + 8:i + 8 + length] if name == b"IDAT" else b""
        i += 12 + length
    raw, stride = zlib.decompress(chunks), 4 * width + 1
    assert all(raw[y * stride] == 0 for y in range(height))
    return width, height, [tuple(raw[y * stride + 1 + 4 * x:y * stride + 5 + 4 * x])
                           for y in range(height) for x in range(width)]


def test_the_icons_are_what_teams_asks_for():
    icons = committed()["icons"]
    width, height, color = pixels((MANIFEST_DIR / icons["color"]).read_bytes())
    assert (width, height) == (192, 192) and len(set(color)) > 1
    width, height, outline = pixels((MANIFEST_DIR / icons["outline"]).read_bytes())
    assert (width, height) == (32, 32)
    assert set(outline) == {(255, 255, 255, 255), (0, 0, 0, 0)}  # white on transparent, nothing else


def test_the_package_opens_with_the_configured_ids(tmp_path):
    path = build_package(APP_ID, tmp_path / "out" / "switchboard-teams.zip", version="1.2.3")
    with zipfile.ZipFile(path) as package:
        assert package.testzip() is None
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        packaged = json.loads(package.read("manifest.json"))
        assert package.read("outline.png") == (MANIFEST_DIR / "outline.png").read_bytes()
    assert packaged["id"] == packaged["bots"][0]["botId"] == packaged["webApplicationInfo"]["id"] == APP_ID
    assert packaged["version"] == "1.2.3" and problems(packaged) == []
    assert PLACEHOLDER not in json.dumps(packaged)
    assert manifest(APP_ID)["version"] == committed()["version"]


@pytest.mark.parametrize("app_id", ["", PLACEHOLDER, "switchboard"])
def test_no_package_without_a_real_app_id(tmp_path, app_id):
    with pytest.raises(ConfigError, match="TEAMS_APP_ID"):
        build_package(app_id, tmp_path / "p.zip")
    assert not (tmp_path / "p.zip").exists()


def test_a_package_with_a_missing_icon_is_refused(tmp_path):
    source = tmp_path / "teams"
    source.mkdir()
    (source / "manifest.json").write_text((MANIFEST_DIR / "manifest.json").read_text())
    (source / "color.png").write_bytes((MANIFEST_DIR / "color.png").read_bytes())
    with pytest.raises(ConfigError, match="outline.png"):
        build_package(APP_ID, tmp_path / "p.zip", source=source)
    assert Path(MANIFEST_DIR / "outline.png").is_file()
