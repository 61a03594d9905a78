"""The `switchboard` command as a user runs it (subprocesses, real files)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest


def run(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adapters.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def home(tmp_path, sample_index_path):
    shutil.copy(sample_index_path, tmp_path / "index.sqlite3")
    return {"SWITCHBOARD_HOME": str(tmp_path), "SWITCHBOARD_INDEX": str(tmp_path / "index.sqlite3")}


def test_ask_json_prints_the_reply(home):
    result = run("ask", "Puis-je retirer ma commande au magasin ?", "--json", env=home)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["answered"] and reply["language"] == "fr" and reply["citations"]


def test_ingest_reports_bad_files_and_sources_lists_status(home, tmp_path):
    folder = tmp_path / "hr"
    folder.mkdir()
    (folder / "leave.md").write_text("# Paid leave\n\nEmployees get 25 days of paid leave per year.")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    result = run("ingest", str(folder), "--source", "hr", env=home)
    assert result.returncode == 0, result.stderr
    assert "1 added" in result.stdout and "broken.pdf" in result.stderr
    listing = run("sources", env=home)
    assert "hr" in listing.stdout and "success" in listing.stdout and "1 document(s)" in listing.stdout


def test_errors_are_one_clear_line_and_exit_2(home, tmp_path):
    missing = run("ingest", str(tmp_path / "nowhere"), env=home)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    bad = tmp_path / "profiles.toml"
    bad.write_text("[profiles.a\n")
    malformed = run("ask", "hi", env={**home, "SWITCHBOARD_PROFILES": str(bad)})
    assert malformed.returncode == 2 and "not valid TOML" in malformed.stderr
    assert "Traceback" not in malformed.stderr
    retry = run("sources", "retry", "ghost", env=home)
    assert retry.returncode == 2 and "no source named 'ghost'" in retry.stderr


def test_eval_retrieval_ends_with_one_json_line(tmp_path, home):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps(d) for d in [
        {"id": "a", "title": "Refunds", "text": "Refunds are paid within five days."},
        {"id": "b", "title": "Shipping", "text": "We ship to Belgium in three days."},
        {"id": "c", "title": "Password", "text": "Reset your password from the login page."}]))
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join(json.dumps(q) for q in [
        {"query": "when do I get my money back", "relevant": ["a"]},
        {"query": "delivery to Belgium", "relevant": ["b"]}]))
    result = run("eval", "retrieval", "--corpus", str(corpus), "--queries", str(queries), env=home)
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(scores) == {"recall@1", "recall@5", "mrr@10", "n"} and scores["n"] == 2
    assert scores["recall@5"] == 1.0


def test_eval_answers_counts_answers_and_declines(tmp_path, home):
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join(json.dumps(q) for q in [
        {"query": "How long do I have to return an item?", "relevant": ["helpcenter/en/returns"]},
        {"query": "What is the boiling point of mercury?"}]))
    result = run("eval", "answers", "--queries", str(queries), env=home)
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores == {"answered": 0.5, "declined": 0.5, "cited_relevant": 1.0, "n": 2}


def test_a_malformed_eval_file_is_named(tmp_path, home):
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"query": "x"}\nnot json\n')
    result = run("eval", "answers", "--queries", str(queries), env=home)
    assert result.returncode == 2 and "q.jsonl:2" in result.stderr


def test_half_configured_slack_is_named_and_exits_2(home):
    result = run("serve", "--port", "1", env={**home, "SLACK_SIGNING_SECRET": "s3cret"})
    assert result.returncode == 2 and "SLACK_BOT_TOKEN is missing" in result.stderr
    assert "s3cret" not in result.stderr
    wrong = run("serve", "--port", "1", env={**home, "SLACK_BOT_TOKEN": "xoxp-user", "SLACK_SIGNING_SECRET": "s"})
    assert wrong.returncode == 2 and "must be a bot token" in wrong.stderr and "xoxp-user" not in wrong.stderr


def test_serve_mounts_slack_when_configured(home, fake_slack):
    import httpx

    from tests.fakes.server import free_port

    port = free_port()
    env = {**os.environ, **home, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s3cret-signing",
           "SLACK_API_URL": f"{fake_slack.url}/api/"}
    server = subprocess.Popen([sys.executable, "-m", "adapters.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in server.stderr:  # readiness: uvicorn says when it listens
            seen.append(line)
            if "Uvicorn running on" in line:
                break
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200, "".join(seen)
        assert httpx.post(f"{url}/slack/events", content=b"{}", timeout=10).status_code == 401
    finally:
        server.terminate()
        stderr = "".join(seen) + server.communicate(timeout=30)[1]
    assert "(web chat, slack)" in stderr and "s3cret-signing" not in stderr and "xoxb-test" not in stderr
    assert "will be unused" not in stderr


def test_a_notion_source_is_added_synced_listed_and_fails_with_what_to_do(home):
    from tests.fakes.notion_api import FakeNotion, heading, paragraph
    from tests.fakes.server import serve

    notion = FakeNotion()
    notion.add_page("Paid leave", [heading(1, "Leave"), paragraph("Employees get 25 days of paid leave a year.")])
    with serve(notion.app()) as url:
        env = {**home, "NOTION_TOKEN": notion.token, "COLUMNS": "200"}
        added = run("sources", "add", "notion", "handbook", "--base-url", url, "--visibility", "internal", env=env)
        assert added.returncode == 0, added.stderr
        assert "handbook (complete): 1 added" in added.stdout and notion.token not in added.stdout + added.stderr
        notion.revoke()
        failed = run("sync", "handbook", env=env)
        assert failed.returncode == 1 and "reconnect the integration" in failed.stderr
        listing = run("sources", env=env)
        assert "handbook" in listing.stdout and "failed" in listing.stdout
        duplicate = run("sources", "add", "notion", "handbook", env=env)
        assert duplicate.returncode == 2 and "exists" in duplicate.stderr
        missing = run("sources", "add", "confluence", "wiki", env=env)
        assert missing.returncode == 2 and "needs url, spaces" in missing.stderr
