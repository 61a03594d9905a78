"""The wheel carries every module and every file read at run time.

setuptools itself computes, from pyproject.toml, the packages and package data a build
would put in the wheel (no build: a fraction of a second); every Python package in the
tree and every file of the sample knowledge, the web chat's static files, the default
profiles and the platform manifests must be among them, so a new sample file or
subpackage can't silently miss `pip install .`. `scripts/check-wheel` builds and installs
the real wheel.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_DATA = ["knowledge/sample", "adapters/web_static", "manifests/teams", "manifests/slack"]

# include_package_data is off here so that only package-data globs count: a build's egg-info
# manifest is made from those globs (there is no MANIFEST.in), and a stale egg-info in the
# tree must not hide a file the globs miss.
_PLAN = """
import json, warnings
warnings.simplefilter("ignore")
from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution
dist = Distribution({"script_name": "setup.py"})
apply_configuration(dist, "pyproject.toml")
dist.include_package_data = False
build = dist.get_command_obj("build_py")
build.ensure_finalized()
files = sorted({f"{src}/{name}" for _, src, _, names in build.data_files for name in names})
print(json.dumps({"packages": sorted(dist.packages), "files": files}))
"""


def _plan() -> dict[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", _PLAN], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _tree(folder: str) -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_every_file_read_at_run_time_is_package_data():
    packaged = set(_plan()["files"])
    needed = set().union(*(_tree(folder) for folder in RUNTIME_DATA)) | {"bot/profiles.default.toml"}
    assert {"knowledge/sample/offers.csv", "knowledge/sample/qa_form.yaml",
            "knowledge/sample/helpcenter/en/returns.md", "adapters/web_static/index.html"} <= needed
    assert sorted(needed - packaged) == []


def test_every_python_package_is_found():
    packages = set(_plan()["packages"])
    in_tree = {p.parent.relative_to(ROOT).as_posix().replace("/", ".")
               for top in ("bot", "adapters", "knowledge") for p in (ROOT / top).rglob("__init__.py")}
    assert "bot.tools" in in_tree
    assert sorted(in_tree - packages) == []
    assert not {p for p in packages if p.split(".")[0] in {"tests", "bench", "scripts"}}
