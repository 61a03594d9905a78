"""The order tool through httpx against the fake Shopify store (tests/fakes/shopify_api.py),
whose orders are tau2-bench's (tests/fixtures/tau2_retail)."""
from __future__ import annotations

import json
import uuid

import pytest

from bot.memory_redis import RedisMemory
from bot.tools import ToolContext, ToolError, Toolbox
from bot.tools.shopify import ShopifyTools
from bot.types import User
from tests.fakes.server import free_port, serve
from tests.fakes.shopify_api import FakeShopify

ORDER, EMAIL = "#W2611340", "james.li4495@example.com"  # processed: shipped, DHL tracking 357962501027
OTHER_EMAIL = "ava.moore6020@example.com"  # a real customer of the store, not this order's
SECRETS_OF_ORDER = ("Water Bottle", "Office Chair", "1000ml", "357962501027", "dhl", "River Road", "10083",
                    "New York", "James", "536.65", "shipped", "paid", "2024-")


@pytest.fixture(scope="module")
def fake():
    return FakeShopify.from_tau2()


@pytest.fixture(scope="module")
def url(fake):
    with serve(fake.app()) as url:
        yield url


@pytest.fixture(autouse=True)
def fresh(fake):
    fake.reset()


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def shop(fake, url, sleeps):
    return ShopifyTools(store_url=url, token=fake.token, max_wrong_guesses=3, sleep=sleeps)


def context(user: str = "", **changes) -> ToolContext:
    values = dict(conversation="web:1", channel="web", user=User(user or f"visitor-{uuid.uuid4().hex[:8]}"),
                  profile="default")
    return ToolContext(**{**values, **changes})


def test_the_tool_as_the_model_sees_it(shop):
    (tool,) = Toolbox().register(shop).tools.values()
    assert (tool.name, tool.acting, tool.parameters["required"]) == ("order_status", False, ["order_number"])
    assert "email" in tool.description and set(tool.parameters["properties"]) == {"order_number", "email"}


async def test_the_right_email_shows_the_order(shop, fake):
    result = await shop.order_status(context(), " #w2611340 ", " James.Li4495@Example.com ")
    assert (result["order"], result["status"], result["payment"], result["fulfillment"]) == (
        ORDER, "shipped", "paid", "fulfilled")
    assert result["items"] == [
        {"title": "Water Bottle", "quantity": 1, "options": "1000ml / glass / blue", "price": "47.84"},
        {"title": "Office Chair", "quantity": 1, "options": "fabric / black / fixed / standard", "price": "488.81"}]
    (shipment,) = result["shipments"]
    assert shipment["status"] == "in_transit" and shipment["tracking_numbers"] == ["357962501027"]
    assert shipment["carrier"] == "DHL Express" and "357962501027" in shipment["tracking_urls"][0]
    assert shipment["items"] == ["Water Bottle", "Office Chair"]
    assert result["ship_to"] == "New York, NY, US" and "River Road" not in json.dumps(result)
    (call,) = fake.calls
    assert call.params["name"] == ORDER and call.params["status"] == "any"  # closed orders too
    assert call.params["email"] == "James.Li4495@Example.com" and [o["name"] for o in call.orders] == [ORDER]


@pytest.mark.parametrize("email", [OTHER_EMAIL, "james.li4495@example.co", "nobody@example.com"])
async def test_a_wrong_email_shows_nothing(shop, fake, email):
    result = await shop.order_status(context(), ORDER, email)
    assert result == {"order": ORDER, "found": False,
                      "note": "no order matches this number and email address: ask the customer to check both"}
    text = json.dumps(result).lower()
    assert not [s for s in SECRETS_OF_ORDER if s.lower() in text]
    # the lookup itself was filtered by the email: the store never sent this order back
    (call,) = fake.calls
    assert (call.params["name"], call.params["email"], call.status, call.orders) == (ORDER, email, 200, [])


async def test_the_store_never_returns_another_customers_order(shop, fake):
    """Every lookup, right or wrong: each order the fake sent back belongs to the email asked."""
    for email in (EMAIL, OTHER_EMAIL, EMAIL.upper(), "nobody@example.com"):
        await shop.order_status(context(), ORDER, email)
    assert len(fake.calls) == 4 and sum(len(c.orders) for c in fake.calls) == 2
    for call in fake.calls:
        assert all(o["email"].casefold() == call.params["email"].casefold() for o in call.orders)


async def test_an_unknown_order_answers_like_a_wrong_email(shop):
    unknown = await shop.order_status(context(), "W0000001", EMAIL)
    wrong = await shop.order_status(context(), ORDER, OTHER_EMAIL)
    assert {**unknown, "order": ""} == {**wrong, "order": ""}


async def test_no_email_asks_for_it_without_asking_shopify(shop, fake):
    result = await shop.order_status(context(), ORDER)
    assert result["error"] == "email_required" and set(result) == {"order", "error", "note"}
    assert "not an order number" in (await shop.order_status(context(), "my order please", EMAIL))["error"]
    assert fake.calls == []


async def test_statuses_of_delivered_cancelled_and_pending_orders(shop):
    delivered = await shop.order_status(context(), "#W4817420", "ava.moore6020@example.com")
    assert delivered["status"] == "delivered" and delivered["shipments"][0]["status"] == "delivered"
    cancelled = await shop.order_status(context(), "#W3220387", "amelia.silva2111@example.com")
    assert (cancelled["status"], cancelled["payment"]) == ("cancelled", "refunded")
    assert cancelled["cancelled_at"] and cancelled["shipments"][0]["status"] == "cancelled"
    pending = await shop.order_status(context(), "#W5918442", "sofia.rossi2645@example.com")
    assert (pending["status"], pending["fulfillment"], pending["shipments"]) == ("not shipped yet", "unfulfilled", [])
    assert [(i["title"], i["options"]) for i in pending["items"]][2:] == [
        ("Action Camera", "5K / yes / silver"), ("Action Camera", "4K / yes / silver")]  # two variants
    repeated = await shop.order_status(context(), "#W1840144", "harper.brown3965@example.com")
    assert [(i["title"], i["quantity"]) for i in repeated["items"]].count(("Fleece Jacket", 2)) == 1


async def test_staff_may_look_up_any_order(shop):
    staff = context(options={"any_order": True})
    assert (await shop.order_status(staff, ORDER))["items"][0]["title"] == "Water Bottle"
    assert (await shop.order_status(staff, "#W0000001"))["note"] == "no order with this number"
    in_public = context(options={"any_order": True}, private=False)  # a public channel: no staff bypass
    assert (await shop.order_status(in_public, ORDER))["error"] == "email_required"


async def test_an_order_shown_once_is_shown_again_to_the_same_user_only(shop, fake):
    ctx = context("visitor-1")
    await shop.order_status(ctx, ORDER, EMAIL)
    again = await shop.order_status(ctx, ORDER)  # "any news on my order?"
    assert again["shipments"][0]["tracking_numbers"] == ["357962501027"]
    other = context("visitor-2", notes=ctx.notes)  # someone else in the same thread
    assert (await shop.order_status(other, ORDER))["error"] == "email_required"


async def test_guesses_are_limited_across_workers(shop, fake, url, redis_url):
    memory = RedisMemory(redis_url, prefix=f"test-{uuid.uuid4().hex[:8]}:")
    try:
        guesser = context("guesser", tally=memory.tally)
        for email in ("a@example.com", "b@example.com", "c@example.com"):
            assert (await shop.order_status(guesser, ORDER, email))["found"] is False
        assert len(fake.calls) == 3
        # another worker (another ShopifyTools) sharing the same memory refuses even the right email
        second = ShopifyTools(store_url=url, token=fake.token, max_wrong_guesses=3)
        limited = await second.order_status(context("guesser", tally=memory.tally), ORDER, EMAIL)
        assert limited["error"] == "too_many_attempts" and "items" not in limited
        assert len(fake.calls) == 3  # Shopify was not asked
        other = await shop.order_status(context("someone-else", tally=memory.tally), ORDER, EMAIL)
        assert other["status"] == "shipped"
    finally:
        await memory.close()


async def test_right_answers_do_not_count_as_guesses(shop, fake):
    ctx = context("regular-customer")
    for _ in range(6):  # more lookups than the limit, all with the right email, in fresh conversations
        ctx.notes.clear()
        assert (await shop.order_status(ctx, ORDER, EMAIL))["status"] == "shipped"
    ctx.notes.clear()
    assert (await shop.order_status(ctx, ORDER, OTHER_EMAIL))["found"] is False  # one wrong: still allowed


async def test_guesses_are_counted_in_process_without_a_shared_tally(shop, fake):
    ctx = context("lone-guesser")
    for _ in range(3):
        await shop.order_status(ctx, ORDER, OTHER_EMAIL)
    assert (await shop.order_status(ctx, ORDER, EMAIL))["error"] == "too_many_attempts"
    assert len(fake.calls) == 3


async def test_rate_limited_then_answered(shop, fake, sleeps):
    fake.rate_limit(times=2, retry_after="2.0")
    assert (await shop.order_status(context(), ORDER, EMAIL))["status"] == "shipped"
    assert sleeps == [2.0, 2.0] and [c.status for c in fake.calls] == [429, 429, 200]


async def test_still_rate_limited_is_a_tool_error_after_bounded_waits(shop, fake, sleeps):
    fake.rate_limit(times=3, retry_after="120")
    with pytest.raises(ToolError, match="429"):
        await shop.order_status(context(), ORDER, EMAIL)
    assert sleeps == [5.0, 5.0] and len(fake.calls) == 3


async def test_failures_are_tool_errors_without_the_token(shop, fake, url):
    fake.fail(status=503)
    with pytest.raises(ToolError, match="503") as failure:
        await shop.order_status(context(), ORDER, EMAIL)
    assert fake.token not in repr(failure.value)
    wrong = ShopifyTools(store_url=url, token="shpat_wrong_SECRET")
    with pytest.raises(ToolError, match="access token was refused") as failure:
        await wrong.order_status(context(), ORDER, EMAIL)
    assert "SECRET" not in repr(failure.value)
    gone = ShopifyTools(store_url=f"http://127.0.0.1:{free_port()}", token=fake.token)
    with pytest.raises(ToolError, match="can't reach the store"):
        await gone.order_status(context(), ORDER, EMAIL)
