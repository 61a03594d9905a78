"""Imports point one way (adapters → bot → knowledge), and only the composition root
reads the environment (STYLE.md principles 2 and 9)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHANNEL_SDKS = {"slack_bolt", "slack_sdk", "telegram", "botbuilder", "botframework"}
ENV_READER = ROOT / "adapters" / "cli.py"


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", _modules("bot"), ids=lambda p: p.name)
def test_bot_imports_no_channel_sdk_nor_adapters(path):
    assert not _imports(path) & (CHANNEL_SDKS | {"adapters"})


@pytest.mark.parametrize("path", _modules("knowledge"), ids=lambda p: p.name)
def test_knowledge_imports_neither_bot_nor_adapters(path):
    assert not _imports(path) & (CHANNEL_SDKS | {"bot", "adapters"})


def _reads_environment(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") \
                and isinstance(node.value, ast.Name) and node.value.id == "os":
            return True
    return False


@pytest.mark.parametrize("path", _modules("bot") + _modules("knowledge") + _modules("adapters"),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_only_the_composition_root_reads_the_environment(path):
    assert _reads_environment(path) == (path == ENV_READER)


@pytest.mark.parametrize("path", _modules("bot") + _modules("knowledge") + _modules("adapters"),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_module_has_a_docstring(path):
    if path.name == "__init__.py" and not path.read_text().strip():
        pytest.skip("empty package marker")
    assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))


def test_the_boundary_check_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom slack_bolt import App\nx = os.environ['X']\n")
    assert "slack_bolt" in _imports(bad) and _reads_environment(bad)
