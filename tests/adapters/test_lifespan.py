"""The web process's start and stop (adapters/app.py lifespan): what is loaded before the
first request, and what is given back at stop."""
from __future__ import annotations

import gc
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from starlette.testclient import TestClient

from adapters.app import SWITCH_INTERVAL, create_app
from tests.adapters.test_web import open_runtime

ROOT = Path(__file__).resolve().parents[2]


def test_a_started_app_keeps_its_start_up_heap_from_full_collections_and_switches_sooner_until_it_stops(
        tmp_path, sample_index_path, embedder):
    runtime = open_runtime(tmp_path, sample_index_path, embedder)
    gc.unfreeze()  # whatever an earlier test left: this start must freeze on its own
    interval = sys.getswitchinterval()
    with TestClient(create_app(runtime, channels=[])) as client:
        frozen = gc.get_freeze_count()
        assert frozen > 100_000  # the model's tokenizer, jieba's dictionary, the index's views
        assert sys.getswitchinterval() == SWITCH_INTERVAL < interval  # the door gets the lock back sooner
        assert client.get("/healthz").status_code == 200
        # what comes later is the collector's as usual: nothing more is frozen (frozen objects
        # freed by their reference count leave the permanent generation, so it may shrink)
        assert gc.get_freeze_count() <= frozen
    assert gc.get_freeze_count() == 0  # stopped: the collector has everything back
    assert sys.getswitchinterval() == interval


def test_warming_up_over_chinese_knowledge_builds_jiebas_dictionary_before_the_first_question(
        tmp_path, sample_index_path):
    # A fresh interpreter: in this one, indexing the sample has built the dictionary already.
    shutil.copy(sample_index_path, tmp_path / "index.sqlite3")
    script = textwrap.dedent(f"""
        import dataclasses, jieba
        from bot.runtime import Runtime
        from bot.settings import Settings
        settings = dataclasses.replace(Settings.from_env({{"SWITCHBOARD_HOME": {str(tmp_path)!r}}}),
                                       index_path={str(tmp_path / "index.sqlite3")!r}, load_sample=False)
        runtime = Runtime.open(settings)
        before = jieba.dt.initialized
        runtime.warm()
        print(before, jieba.dt.initialized)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True"]
