"""A clone with nothing beside it runs the whole suite (STYLE.md principle 12).

Nothing under tests/ may name a path outside the checkout: no `../shared`, no `/work/…`,
no `Path(__file__)` climbing above the repository root, no `ROOT.parent`. Every fixture
folder says where its files come from in a PROVENANCE.md that names each of them.
Benchmarks may read the evaluation sets beside the repository (`../shared/eval`,
`../shared/security`); the platform payloads they replay come from tests/fixtures. A
PROVENANCE.md may name the place its files were copied from.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUTSIDE = [
    re.compile(r"\.\./+shared\b"),
    re.compile(r"/work/"),
    re.compile(r"\bROOT\.parent\b"),
    re.compile(r"\bSHARED\b"),
    re.compile(r"\.parent\s*/\s*[\"']shared[\"']"),
    re.compile(r"[\"']\.\.[\"']\s*/\s*[\"']shared[\"']"),
]
CLIMB = re.compile(r"Path\(__file__\)(?:\.resolve\(\))?(?:\.parents\[(\d+)\]|((?:\.parent\b)+))")
SHARED_IN_BENCH = re.compile(r"(?:\.\./shared/|[\"']shared[\"']\s*/\s*[\"'])(\w+)")


def escapes(text: str, depth: int) -> list[str]:
    """The lines of `text` naming a path outside the checkout; the root is `depth` parents up."""
    found = []
    for line in text.splitlines():
        climbs = [int(m[1]) + 1 if m[1] else m[2].count(".parent") for m in CLIMB.finditer(line)]
        if any(p.search(line) for p in OUTSIDE) or any(n > depth for n in climbs):
            found.append(line.strip())
    return found


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


@pytest.mark.parametrize("line, depth", [
    ('SHARED = ROOT.parent / "shared"', 1),
    ('PAYLOADS = Path(__file__).resolve().parents[3] / "shared" / "payloads" / "slack"', 3),
    ('PAYLOADS = Path("/work/shared/payloads/telegram")', 3),
    ('data = Path(__file__).parent.parent.parent / "x"', 2),
    ('DB = HERE.parent.parent / "shared" / "eval"', 2),
    ('PAYLOADS = SHARED / "payloads" / "telegram"', 3),
    ('open("../shared/eval/db.json")', 2),
])
def test_the_check_sees_each_way_out(line, depth):
    assert escapes(line, depth) == [line]


@pytest.mark.parametrize("line, depth", [
    ('FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "teams"', 3),
    ('MANIFEST = Path(__file__).resolve().parents[2] / "manifests/slack/manifest.yaml"', 3),
    ('ROOT = Path(__file__).resolve().parent.parent', 2),
    ('async with one.lock("shared"):', 3),
    ('json.dumps({"conversation": "../../etc"})', 3),
])
def test_the_check_lets_paths_inside_the_checkout_pass(line, depth):
    assert escapes(line, depth) == []


def test_no_test_file_names_a_path_outside_the_checkout():
    checked, found = 0, {}
    for path in _files(ROOT / "tests"):
        text = _text(path)
        if text is None or path.name == "PROVENANCE.md" or path == Path(__file__).resolve():
            continue
        checked += 1
        relative = path.relative_to(ROOT)
        if lines := escapes(text, len(relative.parts)):
            found[relative.as_posix()] = lines
    assert checked > 50 and found == {}


def test_benchmarks_replay_the_payloads_in_the_repository():
    found = [p.name for p in _files(ROOT / "bench") if p.suffix == ".py"
             if "payloads" in SHARED_IN_BENCH.findall(p.read_text(encoding="utf-8"))]
    assert found == []


@pytest.mark.parametrize("folder", sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()))
def test_each_fixture_folder_names_the_origin_of_each_file(folder):
    provenance = FIXTURES / folder / "PROVENANCE.md"
    assert provenance.is_file()
    text = provenance.read_text(encoding="utf-8")
    files = [p for p in _files(FIXTURES / folder) if p != provenance]
    assert files and [p.name for p in files if p.name not in text] == []


def test_the_channel_payloads_are_in_the_repository():
    assert {"slack", "telegram", "teams"} <= {p.name for p in FIXTURES.iterdir() if p.is_dir()}
