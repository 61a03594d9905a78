"""The README and docs/*.md stay true: their commands exist, their runnable examples run,
their links lead somewhere.

Conventions (docs/README.md says them to writers):
- A fenced block with the info string `sh` holds shell commands. Every `switchboard …` line
  in it (after `VAR=value` prefixes, `export`/comments aside) must parse with the real
  parser of adapters/cli.py: a subcommand, sub-subcommand, choice or option that doesn't
  exist fails here. A command naming a repository file (`scripts/start`,
  `python bench/pii.py`) must name a file that exists.
- A fenced block with the info string `sh run` is also run, as one bash script with
  `set -e`, in an empty temporary folder with a throwaway SWITCHBOARD_HOME and
  SWITCHBOARD_SAMPLE=0: only examples that need no credential, no network and no server.
- Every relative link and image, in Markdown or in bot/profiles.default.toml's
  `docs/….md#anchor` pointers, must point to a file that exists, and an `#anchor` to a
  heading of that file.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.cli import parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^[ \t]*```([^\n`]*)\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)  # also in list items
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
POINTER = re.compile(r"\b(docs/[\w./-]+\.md(?:#[\w-]+)?)")


def blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of each fenced block."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(text)]


def commands(body: str) -> list[list[str]]:
    """The commands of a shell block, as argument lists: continuations joined, comments and
    `VAR=value` prefixes dropped, `a && b`, `a; b` and `a | b` split."""
    joined = re.sub(r"\\\n", " ", body)
    found = []
    for line in joined.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:  # an unbalanced quote: let the check name it
            tokens = ["<unparsable>", line]
        current: list[str] = []
        for token in tokens + [";"]:
            if token and set(token) <= set(";&|"):
                if current:
                    found.append(current)
                current = []
            elif current or not ASSIGNMENT.match(token):
                current.append(token)
    return found


def check_switchboard(args: list[str]) -> str:
    """"" when the real parser accepts `switchboard args`, else its complaint."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parser().parse_args(args)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return stderr.getvalue().strip().splitlines()[-1] if stderr.getvalue().strip() else f"exit {exc.code}"
    return ""


def problems_in_command(command: list[str]) -> list[str]:
    """What is wrong with one documented command (nothing for commands we don't know)."""
    name = command[0]
    if name == "export":
        return []
    if name == "switchboard" or name.endswith("/bin/switchboard"):
        complaint = check_switchboard(command[1:])
        return [f"`{shlex.join(command)}`: {complaint}"] if complaint else []
    script = None
    if "/" in name and not name.startswith(("/", "~", ".venv/", "$")):
        script = name
    elif re.fullmatch(r"(?:\.venv/bin/)?python3?", name) and len(command) > 1 and command[1].endswith(".py"):
        script = command[1]
    if script and not (ROOT / script).exists():
        return [f"`{shlex.join(command)}`: no file {script}"]
    return []


def command_problems(text: str) -> list[str]:
    return [problem for info, body in blocks(text) if info.split()[:1] == ["sh"]
            for command in commands(body) for problem in problems_in_command(command)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


def target_problem(base: Path, target: str) -> str:
    """"" when a relative link target exists (and its anchor), else what is missing."""
    if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
        return ""  # https:, mailto:: not ours to check
    path_part, _, anchor = target.partition("#")
    path = (base / path_part).resolve() if path_part else None
    if path is not None and not path.exists():
        return f"{target}: no such file"
    where = path or None
    if anchor and (where is None or where.suffix == ".md") and anchor not in anchors(where or base):
        return f"{target}: no heading #{anchor}"
    return ""


def link_problems(path: Path, text: str) -> list[str]:
    prose = FENCE.sub("", text)
    found = []
    for m in LINK.finditer(prose):
        target = m.group(1)
        problem = target_problem(path if target.startswith("#") else path.parent, target)
        if problem:
            found.append(problem)
    return found


def switchboard_shim(folder: Path) -> Path:
    """A `switchboard` on PATH that runs this checkout's CLI with this interpreter."""
    shim = folder / "switchboard"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m adapters.cli "$@"\n')
    shim.chmod(0o755)
    return shim


# -- the documents ----------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documented_commands_exist(path):
    assert command_problems(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(path):
    assert link_problems(path, path.read_text(encoding="utf-8")) == []


def test_profiles_file_points_to_existing_docs():
    text = (ROOT / "bot" / "profiles.default.toml").read_text(encoding="utf-8")
    pointers = POINTER.findall(text)
    assert "docs/configuration.md#channels" in pointers
    assert [p for p in pointers if target_problem(ROOT, p)] == []


def runnable_blocks() -> list[tuple[str, str]]:
    return [(f"{path.relative_to(ROOT)}#{n}", body) for path in DOCS
            for n, (info, body) in enumerate(blocks(path.read_text(encoding="utf-8")))
            if info.split()[:2] == ["sh", "run"]]


def test_there_are_runnable_examples():
    assert len(runnable_blocks()) >= 3


@pytest.mark.parametrize("where,body", runnable_blocks(), ids=[w for w, _ in runnable_blocks()])
def test_runnable_examples_run(where, body, tmp_path):
    work, home, bin_dir = tmp_path / "work", tmp_path / "home", tmp_path / "bin"
    work.mkdir()
    bin_dir.mkdir()
    switchboard_shim(bin_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "XDG_", "OPENAI_", "SLACK_",
                                                                    "TELEGRAM_", "TEAMS_", "JIRA_", "SHOPIFY_"))}
    env.update(SWITCHBOARD_HOME=str(home), SWITCHBOARD_SAMPLE="0", HOME=str(tmp_path), PYTHONPATH=str(ROOT),
               PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", NO_COLOR="1")
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", body], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"{where} failed ({done.returncode}):\n{body}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"


# -- the checks themselves can fail -------------------------------------------------------


def test_a_subcommand_that_does_not_exist_is_named():
    text = "```sh\nswitchboard frobnicate --now\nswitchboard sources list\n```\n"
    problems = command_problems(text)
    assert len(problems) == 1 and "frobnicate" in problems[0]


def test_wrong_choices_and_options_are_named():
    text = ("```sh run\nSLACK_BOT_TOKEN=x switchboard eval conversation\nswitchboard ingest docs --replace-all\n"
            "switchboard sources add confluance wiki\n```\n")
    assert len(command_problems(text)) == 3


def test_blocks_inside_list_items_are_checked():
    text = "1. Start it:\n\n   ```sh\n   TOKEN=x switchboard serve --host 0.0.0.0 --tls\n   ```\n"
    assert len(command_problems(text)) == 1


def test_right_commands_pass():
    text = ("```sh\nexport NOTION_TOKEN=ntn_x\n"
            "switchboard sources add confluence wiki --url https://acme.atlassian.net \\\n  --space DOC  # two spaces\n"
            "A=1 B=2 switchboard ingest ./faq --source faq --replace && switchboard sync faq --full\n"
            "switchboard eval conversations --split dev --json | tail -1\n```\n"
            "```toml\nswitchboard nonsense = 1\n```\n")
    assert command_problems(text) == []


def test_missing_scripts_are_named():
    text = "```sh\nscripts/start\nscripts/launch\n.venv/bin/python bench/nothing.py\n```\n"
    assert [p.split(":")[0] for p in command_problems(text)] == ["`scripts/launch`", "`.venv/bin/python bench/nothing.py`"]


def test_broken_links_and_anchors_are_named(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other page\n\n## Channels\n")
    text = ("# Page\n[ok](other.md#channels) [ok](#page) [web](https://example.com) ![ok](other.md)\n"
            "[gone](missing.md) [bad anchor](other.md#nowhere) [self](#absent)\n"
            "```sh\n# [not a link](inside-code.md)\n```\n")
    page.write_text(text)
    assert link_problems(page, text) == ["missing.md: no such file", "other.md#nowhere: no heading #nowhere",
                                         "#absent: no heading #absent"]


def test_heading_anchors_follow_github():
    assert slug("Handing over to a human") == "handing-over-to-a-human"
    assert slug("`sources = \"*\"` and contact") == "sources---and-contact"
    assert slug("Tools: Jira & Shopify") == "tools-jira--shopify"
