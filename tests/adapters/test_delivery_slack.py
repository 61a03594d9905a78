"""Nothing acknowledged is lost (issue 16), on Slack with the real Bolt app and slack_sdk
against the fake Web API: Slack answering 500 or hanging, and a `switchboard serve` process
killed (SIGKILL) between acknowledging a question and answering it."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.adapters.slack_workspace import BOT, SECRET, event, sign, workspace
from tests.fakes.server import free_port
from tests.services import postgres_service, redis_service

QUESTION = "How long do I have to return an item?"
FAST = (0.05,) * 8  # the pipeline's backoff, shortened: these tests count attempts, not seconds


def answers(fake, channel: str = "C00FAKECHAN1") -> list[dict]:
    return [c.args for c in fake.calls_to("chat.postMessage") if c.ok and c.args["channel"] == channel]


@pytest.fixture
def ws(fake_slack, tmp_path, sample_index_path, embedder):
    with workspace(fake_slack, tmp_path, sample_index_path, embedder, api_timeout=1.0) as space:
        space.runtime.pipeline.backoff = FAST
        yield space


def test_an_answer_slack_refused_with_500s_is_delivered_once_after_recovery(ws, fake_slack):
    fake_slack.outage("chat.postMessage", times=3)
    ws.deliver(event(text=f"<@{BOT}> {QUESTION}"))
    assert ws.channel.deliveries.wait(1) == {"answered": 1}
    failed = [c for c in fake_slack.calls_to("chat.postMessage") if c.status == 500]
    [answer] = answers(fake_slack)
    assert len(failed) == 3 and "30 days" in json.dumps(answer["blocks"])
    assert len(fake_slack.calls_to("reactions.add")) == 1  # one 👀, one answer: the engine ran once
    assert fake_slack.calls_to("reactions.remove")[-1].ok
    kinds = [e.kind for e in ws.runtime.events.events()]
    assert kinds.count("answered") == 1 and "delivery_failed" not in kinds


def test_a_hanging_slack_call_is_cut_by_the_timeout_and_retried(ws, fake_slack):
    release = fake_slack.hold("chat.postMessage")
    try:
        ws.deliver(event(text=f"<@{BOT}> {QUESTION}"))
        assert ws.channel.deliveries.wait(1) == {"answered": 1}
        assert fake_slack.calls_to("held:chat.postMessage")
        [answer] = answers(fake_slack)
        assert "30 days" in json.dumps(answer["blocks"])
    finally:
        release.set()


def test_an_answer_sent_before_a_failure_is_not_sent_again_by_the_retry(ws, fake_slack):
    """The answer is posted, then removing the 👀 hangs past the client's timeout: the job is
    retried, as after a crash between sending and recording the job done. The retry finishes
    the job without posting the answer a second time."""
    release = fake_slack.hold("reactions.remove")  # the next call only
    try:
        ws.deliver(event(text=f"<@{BOT}> {QUESTION}"))
        assert ws.channel.deliveries.wait(1) == {"answered": 1}
        assert fake_slack.calls_to("held:reactions.remove")  # the first attempt did fail there
        [answer] = answers(fake_slack)
        assert "30 days" in json.dumps(answer["blocks"])
        assert fake_slack.calls_to("reactions.remove")[-1].ok  # the retry took the 👀 away
    finally:
        release.set()


def test_an_outage_longer_than_the_retries_is_a_dead_letter_an_event_and_one_apology(ws, fake_slack):
    attempts = ws.runtime.pipeline.max_attempts
    fake_slack.outage("chat.postMessage", times=attempts)  # every attempt fails; the apology gets through
    ws.deliver(event(text=f"<@{BOT}> {QUESTION}"))
    assert ws.channel.deliveries.wait(1) == {"failed": 1}
    [apology] = answers(fake_slack)
    assert "went wrong" in apology["text"] or "went wrong" in json.dumps(apology.get("blocks"))
    [failed] = [e for e in ws.runtime.events.events() if e.kind == "delivery_failed"]
    assert json.loads(failed.detail)["attempts"] == attempts


def test_a_question_redelivered_after_its_answer_is_not_answered_again(ws, fake_slack):
    body = event(text=f"<@{BOT}> {QUESTION}")
    ws.deliver(body)
    ws.channel.deliveries.wait(1)
    ws.deliver(body, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert ws.channel.deliveries.wait(2) == {"answered": 1, "duplicate": 1}
    assert len(answers(fake_slack)) == 1


def test_unsigned_or_junk_requests_never_reach_the_parser(ws):
    assert ws.http.post("/slack/events", content=b"\x00\xff{{{").status_code == 401
    junk = b"payload=%7B%7B%7B"
    assert ws.http.post("/slack/events", content=junk, headers={
        "Content-Type": "application/x-www-form-urlencoded", **sign(junk)}).status_code == 400
    assert ws.channel.deliveries.total() == 0


# -- a process killed mid-answer --------------------------------------------------------------
def _serve(home: Path, index: Path, fake_url: str, port: int, *arguments: str, **env: str) -> subprocess.Popen:
    """`switchboard serve` (or, with arguments, the command they name) until /healthz answers."""
    environment = {**{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REDIS_", "DATABASE_"))},
                   "SWITCHBOARD_HOME": str(home), "SWITCHBOARD_INDEX": str(index), "SWITCHBOARD_SAMPLE": "0",
                   "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET,
                   "SLACK_API_URL": f"{fake_url}/api/", "LOG_LEVEL": "WARNING", **env}
    command = arguments or ("serve", "--port", str(port))
    process = subprocess.Popen([sys.executable, "-m", "adapters.cli", *command], start_new_session=True,
                               env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while True:  # readiness poll, bounded
        if process.poll() is not None:
            raise RuntimeError(f"serve exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code in (200, 503):
                return process
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("serve did not start")
        time.sleep(0.1)


def _deliver(port: int, body: dict) -> httpx.Response:
    raw = json.dumps(body).encode()
    return httpx.post(f"http://127.0.0.1:{port}/slack/events", content=raw,
                      headers={"Content-Type": "application/json", **sign(raw)}, timeout=10)


@pytest.mark.parametrize("queue", ["sqlite", "redis"])
def test_a_question_acknowledged_before_a_crash_is_answered_once_after_restart(queue, fake_slack, tmp_path,
                                                                              sample_index_path, redis_url):
    index = tmp_path / "index.sqlite3"
    shutil.copy(sample_index_path, index)
    env = {"REDIS_URL": redis_url, "QUEUE_LEASE": "2"} if queue == "redis" else {}
    if queue == "redis":
        import redis

        redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    first = _serve(tmp_path, index, fake_slack.url, port, **env)
    release = fake_slack.hold("reactions.add")  # the worker took the question and is at work on it
    try:
        body = event(text=f"<@{BOT}> {QUESTION}")
        assert _deliver(port, body).status_code == 200  # acknowledged: Slack won't send it again
        fake_slack.wait_for("held:reactions.add", timeout=60)
        os.killpg(first.pid, signal.SIGKILL)  # the machine goes: `serve` and the answers process it started
        first.wait(10)
    finally:
        release.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
    assert answers(fake_slack) == []
    again = free_port()
    second = _serve(tmp_path, index, fake_slack.url, again, **env)
    try:
        fake_slack.wait_for("chat.postMessage", timeout=60)
        [answer] = answers(fake_slack)
        assert answer["thread_ts"] == body["event"]["ts"] and "30 days" in json.dumps(answer["blocks"])
        assert _deliver(again, body).status_code == 200  # Slack's retry of it now: a duplicate
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert len(answers(fake_slack)) == 1


def _child(serve: subprocess.Popen, other_than: int | None = None) -> psutil.Process:
    """The answers process `serve` started (another than `other_than`), waited for (bounded)."""
    deadline = time.monotonic() + 60
    while True:
        found = [c for c in psutil.Process(serve.pid).children() if c.pid != other_than and c.is_running()
                 and c.status() != psutil.STATUS_ZOMBIE]
        if found:
            [child] = found
            assert "answers" in child.cmdline()
            return child
        assert time.monotonic() < deadline, "serve started no answers process"
        time.sleep(0.05)


def _metric(port: int, line_start: str) -> float:
    page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert page.status_code == 200, page.text
    found = [line for line in page.text.splitlines() if line.startswith(line_start)]
    return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


def test_serve_answers_in_a_child_it_starts_again_when_killed_mid_answer(fake_slack, tmp_path, sample_index_path):
    """By default `serve` answers the channels in a child `answers` process: killed (SIGKILL)
    while answering, it is started again, and the question it had taken is answered once; the
    web process's /healthz names the gap, its /metrics counts the child's answers and its exit."""
    index = tmp_path / "index.sqlite3"
    shutil.copy(sample_index_path, index)
    port = free_port()
    serve = _serve(tmp_path, index, fake_slack.url, port)
    try:
        child = _child(serve)
        door = child.cmdline()[child.cmdline().index("--door-fd") + 1]  # bot/door.py: serve's, mapped by the child
        assert os.stat(f"/proc/{child.pid}/fd/{door}").st_ino == os.stat(f"/proc/{serve.pid}/fd/{door}").st_ino
        release = fake_slack.hold("reactions.add")
        try:
            body = event(text=f"<@{BOT}> {QUESTION}")
            assert _deliver(port, body).status_code == 200
            fake_slack.wait_for("held:reactions.add", timeout=60)
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            assert health.status_code == 503 and any("answers process: not running (the last one killed by SIGKILL)"
                                                     in p for p in health.json()["problems"]), health.text
            assert _metric(port, 'switchboard_dependency_up{dependency="answers"}') == 0  # /metrics still 200
        finally:
            release.set()
        assert answers(fake_slack) == []
        again = _child(serve, other_than=child.pid)
        fake_slack.wait_for("chat.postMessage", timeout=60)
        [answer] = answers(fake_slack)
        assert answer["thread_ts"] == body["event"]["ts"] and "30 days" in json.dumps(answer["blocks"])
        assert again.is_running() and httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        deadline = time.monotonic() + 30  # the child times its answer once it is recorded done
        while _metric(port, 'switchboard_answer_seconds_count{channel="slack"}') < 1:
            assert time.monotonic() < deadline, "the child's answer never reached the web process's /metrics"
            time.sleep(0.05)
        assert _metric(port, 'switchboard_ack_seconds_count{channel="slack"}') == 1
        assert _metric(port, 'switchboard_events_total{kind="answers_process_exited"}') == 1
        assert _metric(port, 'switchboard_dependency_up{dependency="answers"}') == 1
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(60) in (0, -signal.SIGTERM)
    assert len(answers(fake_slack)) == 1
    assert not again.is_running() or again.status() == psutil.STATUS_ZOMBIE  # stopped with its parent


def test_a_killed_serve_leaves_no_answers_process_behind(fake_slack, tmp_path, sample_index_path):
    """`serve` dies (SIGKILL, no chance to stop anything): its answers process sees its stdin
    close and stops by itself, instead of answering on as an orphan beside the next `serve`."""
    index = tmp_path / "index.sqlite3"
    shutil.copy(sample_index_path, index)
    port = free_port()
    serve = _serve(tmp_path, index, fake_slack.url, port)
    child = _child(serve)
    serve.send_signal(signal.SIGKILL)
    serve.wait(10)
    try:
        child.wait(30)  # its exit code went to whoever adopted it: that it stopped is what counts
        assert not child.is_running()
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def test_serve_answers_inline_runs_one_process(fake_slack, tmp_path, sample_index_path):
    """`serve --answers inline`: no child; the web process answers the channels itself."""
    index = tmp_path / "index.sqlite3"
    shutil.copy(sample_index_path, index)
    port = free_port()
    serve = _serve(tmp_path, index, fake_slack.url, port, "serve", "--answers", "inline", "--port", str(port))
    try:
        assert _deliver(port, event(text=f"<@{BOT}> {QUESTION}")).status_code == 200
        fake_slack.wait_for("chat.postMessage", timeout=60)
        assert psutil.Process(serve.pid).children() == []
        assert len(answers(fake_slack)) == 1
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(60)


def _until_retried(ws) -> None:
    """Wait (bounded) until /metrics counts a Slack delivery retried: it met the outage."""
    deadline = time.monotonic() + 60
    while not any(line.startswith('switchboard_retries_total{channel="slack"}') and float(line.rsplit(" ", 1)[1])
                  for line in ws.http.get("/metrics").text.splitlines()):
        assert time.monotonic() < deadline, "the outage was never retried"
        time.sleep(0.05)


def test_a_redis_outage_is_waited_out_and_every_question_answered_once(fake_slack, tmp_path, sample_index_path,
                                                                        embedder):
    """Redis (memory and queue) killed while one question is being answered and another
    arrives, then back without its data: the first is retried until it is answered, the
    second is refused at the door (503: Slack delivers it again) and answered on redelivery;
    one answer each, no apology."""
    with redis_service() as redis, workspace(fake_slack, tmp_path, sample_index_path, embedder, api_timeout=1.0,
                                             REDIS_URL=redis.url) as ws:
        ws.runtime.pipeline.backoff = (1.0,) * 8  # time enough to bring Redis back between attempts
        release = fake_slack.hold("reactions.add")  # the worker took the first question
        try:
            first = event(text=f"<@{BOT}> {QUESTION}", channel="C00FAKECHAN1")
            assert ws.deliver(first).status_code == 200
            fake_slack.wait_for("held:reactions.add", timeout=60)
            redis.stop()
            second = event(text=f"<@{BOT}> Do you sell gift wrapping?", channel="C00FAKECHAN2")
            assert ws.deliver(second).status_code == 503  # not stored, so not acknowledged
        finally:
            release.set()
        _until_retried(ws)  # the first question met the outage and waits for its next attempt
        redis.start()
        assert ws.deliver(second, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"}).status_code == 200
        assert ws.channel.deliveries.wait(2, timeout=60) == {"answered": 2}
        [one] = answers(fake_slack, "C00FAKECHAN1")
        [two] = answers(fake_slack, "C00FAKECHAN2")
        assert "30 days" in json.dumps(one["blocks"]) and one["thread_ts"] == first["event"]["ts"]
        assert two["thread_ts"] == second["event"]["ts"]
        assert "went wrong" not in json.dumps([one, two])
        assert "delivery_failed" not in [e.kind for e in ws.runtime.events.events()]


def test_a_question_asked_while_the_database_is_down_is_answered_once_it_is_back(fake_slack, tmp_path,
                                                                                 sample_index_path, embedder):
    """PostgreSQL (events and handoffs) stopped: who owns the conversation can't be known, so
    the question is retried, not answered as if no human had it, nor apologised for; once the
    database is back it is answered once, and the events of the outage are written."""
    with postgres_service() as database, workspace(fake_slack, tmp_path, sample_index_path, embedder,
                                                   api_timeout=1.0, DATABASE_URL=database.url) as ws:
        ws.runtime.pipeline.backoff = (2.0,) * 8  # time enough to start PostgreSQL again between attempts
        database.stop()
        body = event(text=f"<@{BOT}> {QUESTION}")
        assert ws.deliver(body).status_code == 200  # the queue is not the database: acknowledged
        _until_retried(ws)
        assert answers(fake_slack) == []
        database.start()
        assert ws.channel.deliveries.wait(1, timeout=60) == {"answered": 1}
        [answer] = answers(fake_slack)
        assert "30 days" in json.dumps(answer["blocks"]) and "went wrong" not in json.dumps(answer)
        asyncio.run(ws.runtime.events.flush())
        assert ws.runtime.events.pending == 0
        kinds = [e.kind for e in ws.runtime.events.events()]
        assert kinds.count("answered") == 1 and "delivery_failed" not in kinds and "turn_failed" not in kinds


def test_an_answers_process_on_redis_yields_the_cpu_by_default_and_on_sqlite_does_not(fake_slack, tmp_path,
                                                                                      sample_index_path, redis_url):
    """Without --nice: niceness 10 on the Redis queue (no lock shared with the door), unchanged
    on the SQLite queue (a preempted holder of its write lock would make the door wait)."""
    index = tmp_path / "index.sqlite3"
    shutil.copy(sample_index_path, index)
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    for env, expected in (({"REDIS_URL": redis_url}, min(ours + 10, 19)), ({}, ours)):
        port = free_port()
        process = _serve(tmp_path, index, fake_slack.url, port, "answers", "--metrics-port", str(port), **env)
        try:
            assert os.getpriority(os.PRIO_PROCESS, process.pid) == expected, env
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 0


def test_separate_web_and_answers_processes_answer_once_and_each_shows_its_own_metrics(fake_slack, tmp_path,
                                                                                      sample_index_path):
    """`serve --no-answers` acknowledges and queues; `answers --metrics-port` answers from the
    SQLite queue they share and times it in its own /metrics. `answers --nice 7` lowers its own
    CPU priority by 7; the web process keeps ours."""
    index = tmp_path / "index.sqlite3"
    shutil.copy(sample_index_path, index)
    web_port, answers_port = free_port(), free_port()
    web = _serve(tmp_path, index, fake_slack.url, web_port, "serve", "--no-answers", "--port", str(web_port))
    workers = _serve(tmp_path, index, fake_slack.url, answers_port, "answers", "--metrics-port", str(answers_port),
                     "--nice", "7")
    try:
        body = event(text=f"<@{BOT}> {QUESTION}")
        assert _deliver(web_port, body).status_code == 200
        fake_slack.wait_for("chat.postMessage", timeout=60)
        [answer] = answers(fake_slack)
        assert answer["thread_ts"] == body["event"]["ts"] and "30 days" in json.dumps(answer["blocks"])
        worked = httpx.get(f"http://127.0.0.1:{answers_port}/metrics", timeout=10).text
        received = httpx.get(f"http://127.0.0.1:{web_port}/metrics", timeout=10).text
        assert 'switchboard_answer_seconds_count{channel="slack"} 1.0' in worked
        assert 'switchboard_answer_seconds_count{channel="slack"}' not in received
        assert 'switchboard_ack_seconds_count{channel="slack"} 1.0' in received
        assert httpx.get(f"http://127.0.0.1:{answers_port}/healthz", timeout=10).json()["ok"]
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, web.pid) == ours
        assert os.getpriority(os.PRIO_PROCESS, workers.pid) == min(ours + 7, 19)
    finally:
        for process in (workers, web):
            process.send_signal(signal.SIGTERM)
        assert workers.wait(60) == 0  # a clean stop (uvicorn's `serve` re-raises SIGTERM once stopped: -15)
        web.wait(60)
