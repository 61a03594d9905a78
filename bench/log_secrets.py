"""How many times secrets appear in the logs, before and after adapters/logs.py, per level.

The parent serves the fake Telegram Bot API, Slack Web API, Jira, Shopify and OpenAI
endpoints (tests/fakes) and, for each level (DEBUG, INFO, WARNING) and each logging setup,
runs a child process that configures logging and then talks to them with the real clients
the app uses: python-telegram-bot (getMe, sendMessage, a failing call whose traceback is
logged), slack_sdk (auth.test, chat.postMessage), openai (one completion), atlassian-python-api
through our Jira tools (create_ticket) and httpx through our Shopify tool (order_status).

- before: `logging.basicConfig(level, format)`, what `switchboard` did until now;
- after: `adapters.logs.configure(level, secrets_in(env))`, what it does now.

Each child's stderr is searched for every secret the child was given, and for the Jira
Basic credential (base64 of email:token, as good as the token). Last line: one JSON object.

    python bench/log_secrets.py
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]  # bench/telegram.py isn't PTB

LEVELS = ("DEBUG", "INFO", "WARNING")
TELEGRAM_TOKEN = "7000123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"
SLACK_TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"
OPENAI_KEY = "sk-proj-Zm9vYmFyYmF6cXV4cXV1eA"


def child(mode: str, level: str) -> None:
    """Configure logging as `mode` says, then use every client once against the fakes."""
    if mode == "after":
        from adapters import logs
        logs.configure(level, logs.secrets_in(os.environ))
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_talk())


async def _talk() -> None:
    import openai
    import telegram
    from slack_sdk import WebClient

    from bot.tools import ToolContext
    from bot.tools.jira import JiraTools
    from bot.tools.shopify import ShopifyTools
    from bot.types import User

    env = os.environ
    log = logging.getLogger("bench")
    bot = telegram.Bot(env["TELEGRAM_BOT_TOKEN"], base_url=f"{env['TELEGRAM_API_URL']}/bot")
    async with bot:
        await bot.get_me()
        await bot.send_message(218485655, "hello")
        try:
            await telegram.Bot(env["TELEGRAM_BOT_TOKEN"], base_url="http://127.0.0.1:1/bot").get_me()
        except Exception:
            log.warning("Telegram unreachable", exc_info=True)
    slack = WebClient(token=env["SLACK_BOT_TOKEN"], base_url=env["SLACK_API_URL"])
    slack.auth_test()
    slack.chat_postMessage(channel="C00FAKECHAN1", text="hello")
    model = openai.AsyncOpenAI(api_key=env["OPENAI_API_KEY"], base_url=env["OPENAI_BASE_URL"], max_retries=0)
    await model.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    ctx = ToolContext(conversation="bench:1", channel="web", user=User("u1", "Ada", email="jane@example.com"),
                      profile="default")
    jira = JiraTools(url=env["JIRA_URL"], project="SUP", email=env["JIRA_EMAIL"], token=env["JIRA_API_TOKEN"])
    await asyncio.to_thread(jira.create_ticket, ctx, "Printer jams")
    shop = ShopifyTools(store_url=env["SHOPIFY_STORE_URL"], token=env["SHOPIFY_ACCESS_TOKEN"])
    await shop.order_status(ctx, "#W2611340", "james.li4495@example.com")
    log.warning("done")


def main() -> None:
    from tests.fakes.jira_api import FakeJira
    from tests.fakes.openai_server import ScriptedOpenAI, Step
    from tests.fakes.server import serve
    from tests.fakes.shopify_api import FakeShopify
    from tests.fakes.slack_api import FakeSlack
    from tests.fakes.telegram_api import FakeTelegram

    telegram, slack, jira = FakeTelegram(token=TELEGRAM_TOKEN, bot_id=7000123456), FakeSlack(token=SLACK_TOKEN), FakeJira()
    shop, model = FakeShopify.from_tau2(), ScriptedOpenAI(steps=[Step(text="hi")] * 12)
    with ExitStack() as stack:
        urls = [stack.enter_context(serve(fake.app())) for fake in (telegram, slack, jira, shop, model)]
        slack.url = urls[1]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN, "TELEGRAM_API_URL": urls[0],
               "SLACK_BOT_TOKEN": SLACK_TOKEN, "SLACK_API_URL": f"{urls[1]}/api/", "JIRA_URL": urls[2],
               "JIRA_EMAIL": jira.email, "JIRA_API_TOKEN": jira.token, "SHOPIFY_STORE_URL": urls[3],
               "SHOPIFY_ACCESS_TOKEN": shop.token, "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": f"{urls[4]}/v1"}
        secrets = {"telegram": TELEGRAM_TOKEN, "slack": SLACK_TOKEN, "openai": OPENAI_KEY, "jira": jira.token,
                   "jira_basic": base64.b64encode(f"{jira.email}:{jira.token}".encode()).decode(),
                   "shopify": shop.token}
        results: dict[str, dict[str, dict[str, int]]] = {"before": {}, "after": {}}
        for level in LEVELS:
            for mode in ("before", "after"):
                run = subprocess.run([sys.executable, __file__, "--child", mode, level], env=env, text=True,
                                     capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
                if run.returncode != 0:
                    raise SystemExit(f"child {mode} {level} failed:\n{run.stderr[-3000:]}")
                counts = {name: run.stderr.count(value) for name, value in secrets.items()}
                counts["lines"] = len(run.stderr.splitlines())
                results[mode][level] = counts
                print(f"{level:8} {mode:7} lines {counts['lines']:5}  secrets "
                      + " ".join(f"{k}={v}" for k, v in counts.items() if k != "lines"))
    summary = {mode: {level: sum(v for k, v in c.items() if k != "lines") for level, c in by.items()}
               for mode, by in results.items()}
    print(json.dumps({"secret_occurrences": summary, "detail": results}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3])
    else:
        main()
