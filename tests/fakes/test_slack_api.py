"""The fake Slack Web API, driven by the real slack_sdk AsyncWebClient over HTTP."""
from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.server import serve
from tests.fakes.slack_api import FakeSlack


@pytest.fixture
def slack():
    fake = FakeSlack()
    with serve(fake.app()) as url:
        yield fake, url + "/api/"


def client_for(api_url: str, token: str = "xoxb-test") -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=api_url)


async def test_auth_test_reports_bot_identity(slack):
    fake, api = slack
    resp = await client_for(api).auth_test()
    assert resp["ok"] and resp["user_id"] == "U0BOT" and resp["bot_id"] == "B0BOT"
    assert {"url", "team", "user", "team_id"} <= resp.data.keys()
    assert fake.calls_to("auth.test")[0].token == "xoxb-test"


async def test_post_then_update_same_ts(slack):
    fake, api = slack
    client = client_for(api)
    posted = await client.chat_postMessage(channel="C1", text="thinking…")
    assert posted["ok"] and posted["channel"] == "C1"
    assert posted["ts"] == "1700000000.000100" and posted["message"]["text"] == "thinking…"
    second = await client.chat_postMessage(channel="C1", text="another")
    assert float(second["ts"]) > float(posted["ts"])

    updated = await client.chat_update(channel="C1", ts=posted["ts"], text="final answer")
    assert updated["ok"] and updated["ts"] == posted["ts"] and updated["channel"] == "C1"
    assert updated["text"] == "final answer"
    assert fake.calls_to("chat.update")[0].args == {"channel": "C1", "ts": posted["ts"], "text": "final answer"}

    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel="C1", ts="1.000000", text="x")
    assert err.value.response["error"] == "message_not_found"


async def test_replies_return_seeded_and_posted_thread(slack):
    fake, api = slack
    client = client_for(api)
    fake.seed_message("C1", "1700000001.000001", "how do I reset my password?", "U1")
    fake.seed_message("C1", "1700000001.000002", "also: 2FA", "U1", thread_ts="1700000001.000001")
    fake.seed_message("C1", "1700000005.000000", "unrelated", "U2")
    reply = await client.chat_postMessage(channel="C1", thread_ts="1700000001.000001", text="Try Settings")
    assert float(reply["ts"]) > 1700000005  # generated ts stay above seeded ones

    resp = await client.conversations_replies(channel="C1", ts="1700000001.000001")
    assert resp["ok"] and resp["has_more"] is False and resp["response_metadata"] == {"next_cursor": ""}
    texts = [m["text"] for m in resp["messages"]]
    assert texts == ["how do I reset my password?", "also: 2FA", "Try Settings"]
    root, bot_reply = resp["messages"][0], resp["messages"][-1]
    assert root["reply_count"] == 2 and root["latest_reply"] == reply["ts"]
    assert bot_reply["user"] == "U0BOT" and bot_reply["bot_id"] == "B0BOT"
    assert bot_reply["thread_ts"] == "1700000001.000001" and bot_reply["parent_user_id"] == "U1"


async def test_form_encoded_methods(slack):
    fake, api = slack
    client = client_for(api)
    fake.add_user("U1", name="ada", real_name="Ada Lovelace", display_name="ada", tz="Europe/London")
    user = (await client.users_info(user="U1"))["user"]
    assert (user["id"], user["name"], user["real_name"], user["profile"]["display_name"], user["tz"],
            user["is_bot"]) == ("U1", "ada", "Ada Lovelace", "ada", "Europe/London", False)
    assert (await client.conversations_info(channel="C1"))["channel"]["id"] == "C1"

    posted = await client.chat_postMessage(channel="C1", text="hi")
    assert (await client.reactions_add(channel="C1", timestamp=posted["ts"], name="eyes"))["ok"]
    with pytest.raises(SlackApiError) as err:
        await client.reactions_add(channel="C1", timestamp=posted["ts"], name="eyes")
    assert err.value.response["error"] == "already_reacted"
    assert (await client.reactions_remove(channel="C1", timestamp=posted["ts"], name="eyes"))["ok"]

    link = await client.chat_getPermalink(channel="C1", message_ts=posted["ts"])
    assert link["permalink"].endswith("/archives/C1/p1700000000000100")
    eph = await client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert eph["ok"] and eph["message_ts"]
    assert (await client.chat_delete(channel="C1", ts=posted["ts"]))["ok"]

    with pytest.raises(SlackApiError) as err:
        await client.api_call("bots.info", params={"bot": "B1"})
    assert err.value.response["error"] == "unknown_method"

    fake.fail("chat.postMessage", "channel_not_found")
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C404", text="x")
    assert err.value.response["error"] == "channel_not_found"
    assert (await client.chat_postMessage(channel="C1", text="next one works"))["ok"]


async def test_wrong_token_is_invalid_auth(slack):
    fake, api = slack
    with pytest.raises(SlackApiError) as err:
        await client_for(api, token="xoxb-wrong").chat_postMessage(channel="C1", text="hi")
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "invalid_auth"
    [call] = fake.calls_to("chat.postMessage")
    assert call.token == "xoxb-wrong" and not call.ok
    assert fake.thread("C1", "1700000000.000100") == []


async def test_rate_limit_is_retried_after_retry_after(slack):
    fake, api = slack
    client = client_for(api)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
    fake.rate_limit("chat.postMessage", times=1, retry_after=1)

    resp = await client.chat_postMessage(channel="C1", text="hello")
    assert resp["ok"]

    limited, delivered = fake.wait_for("chat.postMessage", 2, timeout=10)
    assert limited.limited and limited.status == 429 and limited.response == {"ok": False, "error": "ratelimited"}
    assert not delivered.limited and delivered.ok
    assert len(fake.calls_to("chat.postMessage")) == 2
    assert [m["text"] for m in fake.thread("C1", resp["ts"])] == ["hello"]  # posted exactly once
    assert delivered.at - limited.at >= 0.9  # the SDK honoured Retry-After: 1


async def test_rate_limit_without_retry_handler_surfaces_429(slack):
    fake, api = slack
    fake.rate_limit("users.info", retry_after=7)
    with pytest.raises(SlackApiError) as err:
        await client_for(api).users_info(user="U1")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["retry-after"] == "7"
    assert err.value.response["error"] == "ratelimited"


async def test_an_outage_for_one_channel_leaves_the_others_alone(slack):
    fake, api = slack
    fake.outage("chat.postMessage", 1, status=500, channel="C2")
    assert (await client_for(api).chat_postMessage(channel="C1", text="elsewhere"))["ok"]
    with pytest.raises(SlackApiError) as err:
        await client_for(api).chat_postMessage(channel="C2", text="here")
    assert err.value.response.status_code == 500
    assert (await client_for(api).chat_postMessage(channel="C2", text="again"))["ok"]  # only once


def test_wait_for_times_out_without_calls():
    fake = FakeSlack()
    with pytest.raises(TimeoutError):
        fake.wait_for("chat.postMessage", 1, timeout=0.05)
