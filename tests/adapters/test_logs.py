"""Secrets never reach a log line: `switchboard serve` at LOG_LEVEL=DEBUG with the real
Telegram and Slack clients against the fake Bot API and Web API (and the scripted OpenAI
server), everything it writes to stderr read back; and the handler's filter on its own,
for the shapes third-party loggers use (atlassian's curl dumps, header tuples, tracebacks)."""
from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import uuid

import httpx
import pytest

from adapters import logs
from tests.adapters.slack_workspace import BOT, TEAM, event, sign
from tests.fakes.openai_server import ScriptedOpenAI, Step
from tests.fakes.server import free_port, serve
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram

TELEGRAM_KEY = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"
WEBHOOK_SECRET = "whsec_Q2hlY2sgdGhpcyBvdXQ"
SLACK_TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
OPENAI_KEY = "sk-proj-Zm9vYmFyYmF6cXV4cXV1eA"
DB_PASSWORD = "pg-Pa55w0rd-x9"


class Lines:
    """A child's stderr, read as it comes (a DEBUG run writes more than a pipe holds)."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)
            if "Uvicorn running on" in line:
                self.ready.set()
        self.ready.set()  # the process ended (perhaps without starting): don't wait on

    def text(self) -> str:
        self._thread.join(60)
        return "".join(self.lines)


@pytest.fixture
def fakes():
    bot_id = 7_000_000_000 + uuid.uuid4().int % 10**9
    telegram = FakeTelegram(token=f"{bot_id}:{TELEGRAM_KEY}", bot_id=bot_id, max_poll_seconds=0.5)
    slack = FakeSlack(token=SLACK_TOKEN, bot_user_id=BOT, team_id=TEAM)
    model = ScriptedOpenAI(steps=[Step(text="NO_ANSWER")] * 4)
    with serve(telegram.app()) as tg, serve(slack.app()) as sl, serve(model.app()) as ai:
        slack.url = sl
        yield telegram, tg, slack, model, ai


def test_serve_at_debug_logs_requests_but_no_secret(tmp_path, sample_index_path, fakes):
    telegram, telegram_url, slack, model, model_url = fakes
    shutil.copy(sample_index_path, tmp_path / "index.sqlite3")
    port = free_port()
    env = {**os.environ, "SWITCHBOARD_HOME": str(tmp_path), "SWITCHBOARD_INDEX": str(tmp_path / "index.sqlite3"),
           "LOG_LEVEL": "DEBUG", "TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
           "TELEGRAM_API_URL": telegram_url, "SLACK_BOT_TOKEN": SLACK_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_API_URL": f"{slack.url}/api/", "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": f"{model_url}/v1",
           "OPENAI_MODEL": "test-model", "DATABASE_URL": f"sqlite:///{tmp_path / 'events.db'}",
           "DB_URL_FOR_LOGS": f"postgresql://switchboard:{DB_PASSWORD}@127.0.0.1:1/none"}
    server = subprocess.Popen([sys.executable, "-m", "adapters.cli", "serve", "--port", str(port)], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = Lines(server.stderr)
    try:
        assert stderr.ready.wait(300) and server.poll() is None, "".join(stderr.lines)
        url = f"http://127.0.0.1:{port}"
        update = {"update_id": 1001, "message": {
            "message_id": 11, "date": 1735000000, "text": "How long do I have to return an item?",
            "chat": {"id": 218485655, "type": "private", "first_name": "Waffle"},
            "from": {"id": 218485655, "is_bot": False, "first_name": "Waffle", "language_code": "en"}}}
        hook = httpx.post(f"{url}/telegram/webhook", json=update, timeout=30,
                          headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET})
        assert hook.status_code == 200
        raw = json.dumps(event(text=f"<@{BOT}> How long do I have to return an item?")).encode()
        slack_hook = httpx.post(f"{url}/slack/events", content=raw, timeout=30,
                                headers={"Content-Type": "application/json", **sign(raw, secret=SIGNING_SECRET)})
        assert slack_hook.status_code == 200
        telegram.wait_for("sendMessage", 1, 120, True)
        slack.wait_for("chat.postMessage", 1, 120)
    finally:
        server.terminate()
        server.wait(60)
    text = stderr.text()
    assert "DEBUG" in text and model.requests  # a DEBUG run, and the model was asked
    secrets = {"telegram token": telegram.token, "telegram key": TELEGRAM_KEY, "webhook secret": WEBHOOK_SECRET,
               "slack token": SLACK_TOKEN, "signing secret": SIGNING_SECRET, "openai key": OPENAI_KEY,
               "database password": DB_PASSWORD}
    assert {name: text.count(value) for name, value in secrets.items()} == dict.fromkeys(secrets, 0)
    # the request lines are still there, redacted
    assert f"{telegram_url}/bot[redacted]/getMe" in text and "/bot[redacted]/sendMessage" in text
    assert "chat.postMessage" in text and "/v1/chat/completions" in text


def test_the_filter_redacts_every_logger_and_traceback():
    root = logging.getLogger()
    saved = root.handlers[:], root.level  # pytest's own capture handlers, put back after
    stream = io.StringIO()
    handler = logs.configure("DEBUG", logs.secrets_in({
        "JIRA_API_TOKEN": "ATATT3xFfGF0-jira-secret", "SHOPIFY_ACCESS_TOKEN": "shpat_0123456789abcdef",
        "REDIS_URL": "redis://:r3dis-pass@127.0.0.1:6379/0", "LOG_LEVEL": "DEBUG", "TEAMS_APP_ID": "not-secret-id"}),
        stream=stream)
    try:
        logging.getLogger("atlassian.rest_client").debug(
            "curl --silent -X POST -H 'Authorization: Basic amFuZUBleDpBVEFUVDN4' -H 'Accept: application/json' "
            "--data '{}' 'https://acme.atlassian.net/rest/api/2/issue'")
        logging.getLogger("urllib3.connectionpool").debug("%s %s", "https://shop/x?access_token=shpat_0123456789abcdef",
                                                          "key=AIzaSyA-google&page=2")
        logging.getLogger("httpcore.http11").debug("send_request_headers.complete headers=%r",
                                                   [(b"x-shopify-access-token", b"shpat_0123456789abcdef")])
        logging.getLogger("msrest.http_logger").debug("Request headers: %s", {"Authorization": "Bearer eyJhbGciOi.x.y"})
        try:
            raise ConnectionError("cannot reach redis://:r3dis-pass@127.0.0.1:6379/0 with ATATT3xFfGF0-jira-secret")
        except ConnectionError:
            logging.getLogger("bot.engine").exception("turn failed, token %s", "ATATT3xFfGF0-jira-secret")
        logging.getLogger("bot.tools").info("app %s answered", "not-secret-id")
    finally:
        root.removeHandler(handler)
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    text = stream.getvalue()
    for secret in ("ATATT3xFfGF0-jira-secret", "shpat_0123456789abcdef", "r3dis-pass", "amFuZUBleDpBVEFUVDN4",
                   "AIzaSyA-google", "eyJhbGciOi"):
        assert secret not in text
    assert "Traceback" in text and "ConnectionError: cannot reach redis://:[redacted]@127.0.0.1" in text
    assert "https://acme.atlassian.net/rest/api/2/issue" in text and "app not-secret-id answered" in text
