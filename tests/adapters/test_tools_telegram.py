"""Tools through Telegram: a private chat asks for a ticket, the scripted LLM proposes the real
Jira tool, the message carries Yes / No inline buttons, and Yes pressed twice (two callback
queries) creates one issue in the fake Jira."""
from __future__ import annotations

from bot.settings import DEFAULT_PROFILES
from tests.adapters.test_telegram import PRIVATE, button, buttons, deliver, fake, in_chat, private, sent, web  # noqa: F401
from tests.adapters.test_telegram import api  # noqa: F401
from tests.fakes.openai_server import Call, Step


async def test_yes_twice_creates_one_ticket(web, fake, jira, openai_server, tmp_path):  # noqa: F811
    profiles = tmp_path / "tools.toml"
    profiles.write_text(DEFAULT_PROFILES.read_text().replace(
        "[profiles.support]\ndefault = true\n", '[profiles.support]\ndefault = true\ntools = ["create_ticket"]\n', 1))
    openai_server.steps += [Step(calls=[Call("create_ticket", {"summary": "Parcel never arrived"})]),
                            Step(text="I opened SUP-1 for you.")]
    async with web(SWITCHBOARD_PROFILES=str(profiles), OPENAI_BASE_URL=openai_server.base_url,
                   OPENAI_API_KEY="sk-test", JIRA_URL=jira.url, JIRA_EMAIL=jira.email, JIRA_API_TOKEN=jira.token,
                   JIRA_PROJECT="SUP") as (url, channel, runtime):
        assert await deliver(url, private("My parcel never arrived, please open a ticket")) == 200
        await sent(fake, 1)
        [asked] = in_chat(fake, PRIVATE)
        [(yes, yes_data), (no, _)] = buttons(asked)
        assert (yes, no) == ("Yes", "No") and yes_data.startswith("ok:yes:t_") and jira.created() == []
        for _ in range(2):
            assert await deliver(url, button(yes_data, PRIVATE, asked["message_id"])) == 200
        await sent(fake, 2)
        toasts = await sent(fake, 2, "answerCallbackQuery")
        assert len(jira.created()) == 1
        assert any("SUP-1" in m["text"] for m in in_chat(fake, PRIVATE))
        assert any("already handled" in (t.params.get("text") or "") for t in toasts)
