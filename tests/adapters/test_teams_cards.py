"""Teams rendering and sending, unit by unit: Markdown to the TextBlock subset, splitting under
the message limit, cards and their buttons, reading clicks, and the throttle's pacing,
order and Retry-After."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from types import SimpleNamespace

import pytest
from botbuilder.schema import Activity
from msrest.exceptions import HttpOperationError

from adapters.links import LinkPolicy
from adapters.teams_cards import TEXT_LIMIT, clicked, markdown, mentions_bot, render, size, split, words
from adapters.teams_send import Throttle, place, retry_after
from bot.profiles import load_profiles
from bot.settings import DEFAULT_PROFILES
from bot.types import Action, Citation, Handoff, HandoffReason, Reply

PROFILE = load_profiles(DEFAULT_PROFILES).get("support")
ALLOW = LinkPolicy.of(["x.example"])


@pytest.mark.parametrize("source, expected", [
    ("**30 days** and *really*", "**30 days** and _really_"),
    ("# Returns", "**Returns**"),
    ("see [the policy](https://x.example/a?b=1&c=2)", "see [the policy](https://x.example/a?b=1&c=2)"),
    ("[x](javascript:alert(1))", "[x] (javascript:alert(1))"),  # not a link, and can't become one
    ("a < b & c > d", "a < b & c > d"),  # cards show text as it is
    ("- one\n- two\n  - nested", "- one\n- two\n  - nested"),
    ("1. first\n2. second", "1. first\n2. second"),
    ("| a | b |\n|---|---|\n| 1 | 2 |", "a | b\n1 | 2"),
    ("```\nif a < b:\n    go()\n```", "if a < b:\n    go()"),
    ("~~old~~ [a [b]](https://x.example/p_(1))", "old [a (b)](https://x.example/p_%281%29)"),
    ("You have 30 days [1].", "You have 30 days [1]."),  # citation markers stay
])
def test_markdown_becomes_what_a_textblock_renders(source, expected):
    assert markdown(source, ALLOW) == expected


def test_split_keeps_words_and_links_whole_and_counts_json_escapes():
    link = "[la politique de retour](https://help.example/retours?lang=fr&ref=teams)"
    text = "\n\n".join(f"Paragraphe {n} : " + " ".join(["délai"] * 400) + f" {link}." for n in range(12))
    pieces = split(text)
    assert len(pieces) > 1 and all(size(p) <= TEXT_LIMIT for p in pieces)
    assert sum(size(p) for p in pieces) > len(text)  # "é" weighs 6 characters as JSON sends it
    assert all(p.count("](") == p.count(link) for p in pieces)
    assert " ".join(pieces).split() == text.split()


def test_one_endless_word_is_cut_between_characters_but_not_inside_a_link():
    link = "[l](https://x.example/" + "a" * 50 + ")"
    text = "x" * 90 + link
    pieces = split(text, limit=100)
    assert pieces[0] == "x" * 90 and pieces[1] == link and "".join(pieces) == text


def reply(answer: str, **fields) -> Reply:
    return Reply(id="r_0123456789abcdef", conversation="teams:a:1", answer=answer, language="en", **fields)


def test_an_answer_card_has_sources_and_buttons_carrying_what_a_click_needs():
    citation = Citation("Returns [EU]", "https://help.example/returns", "…", "helpcenter", "d1", "2026-10-02")
    [card] = render(reply("You have **30 days** [1].", citations=(citation,)), PROFILE)
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][0]["text"] == "You have **30 days** [1]."
    sources = card["body"][1]["items"][1]["text"]
    assert sources == "1. [Returns (EU)](https://help.example/returns) · helpcenter, updated 2026-10-02"
    assert [a["data"] for a in card["actions"]] == [{"sb": "feedback", "v": "up", "r": "r_0123456789abcdef"},
                                                   {"sb": "feedback", "v": "down", "r": "r_0123456789abcdef"},
                                                   {"sb": "handoff", "why": "customer_request",
                                                    "r": "r_0123456789abcdef"}]
    assert all("teams:" not in json.dumps(a) for a in card["actions"])  # no conversation in a button


def test_declines_handoffs_and_ratings_get_the_buttons_they_need():
    declined = reply("I don't know.", answered=False, actions=(Action("handoff", "Talk to a human", "handoff",
                                                                      "missing_knowledge"),))
    assert [a["data"] for a in render(declined, PROFILE)[0]["actions"]] == [
        {"sb": "handoff", "why": "missing_knowledge", "r": "r_0123456789abcdef"}]
    handed = reply("A person will answer.", answered=False, handoff=Handoff(HandoffReason.CUSTOMER_REQUEST))
    assert "actions" not in render(handed, PROFILE)[0]
    rating = reply("How was it?", answered=False, actions=tuple(Action(f"rate_{n}", str(n), "rating", f"7:{n}")
                                                              for n in range(1, 6)))
    assert [a["title"] for a in render(rating, PROFILE)[0]["actions"]] == ["1", "2", "3", "4", "5"]


def test_small_talk_has_nothing_to_rate_or_hand_over():
    assert "actions" not in render(reply("Hello! Ask me about delivery, returns…", plain=True), PROFILE)[0]


def test_clicks_are_read_from_invokes_and_submits_and_others_are_not_ours():
    data = {"sb": "feedback", "v": "up", "r": "r_1"}
    invoke = Activity(type="invoke", name="adaptiveCard/action",
                      value={"action": {"type": "Action.Execute", "verb": "feedback", "data": data}})
    assert clicked(invoke) == data and clicked(Activity(type="message", value=data)) == data
    assert clicked(Activity(type="invoke", value={"action": {"data": {"feedback": "x"}}})) is None
    assert clicked(Activity(type="message", text="hello")) is None


def test_the_bots_mention_is_recognised_and_stripped():
    mention = {"type": "mention", "mentioned": {"id": "28:bot", "name": "Switchboard"},
               "text": "<at>Switchboard</at>"}
    activity = Activity().deserialize({"type": "message", "text": "<at>Switchboard</at> where is my order?",
                                       "recipient": {"id": "28:bot"}, "entities": [mention]})
    assert mentions_bot(activity) and words(activity) == "where is my order?"
    other = Activity().deserialize({"type": "message", "text": "<at>Alice</at> hi", "recipient": {"id": "28:bot"},
                                    "entities": [{**mention, "mentioned": {"id": "29:alice"}}]})
    assert not mentions_bot(other) and words(other) == "<at>Alice</at> hi"
    assert not mentions_bot(Activity(type="message", text="hi", recipient=activity.recipient))


def throttled(headers: dict[str, str], status: int = 429) -> HttpOperationError:
    error = HttpOperationError.__new__(HttpOperationError)
    error.response = SimpleNamespace(status_code=status, headers=headers)
    return error


def test_retry_after_is_read_in_seconds_or_as_a_date_else_backoff():
    assert retry_after(throttled({"Retry-After": "2"}), 0) == 2.0
    assert retry_after(throttled({"Retry-After": "0"}), 3) == 0.0
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < retry_after(throttled({"Retry-After": future}), 0) <= 31
    assert retry_after(throttled({}), 0) == 1.0 and retry_after(throttled({}), 3) == 8.0
    assert retry_after(throttled({"Retry-After": "1"}, status=500), 0) is None


async def test_the_throttle_keeps_order_and_at_most_rate_calls_per_window_per_conversation():
    throttle = Throttle(rate=7, window=0.25)
    done: list[tuple[str, int, float]] = []

    async def call(where: str, n: int) -> int:
        done.append((where, n, time.monotonic()))
        return n
    chain = "19:c@thread.tacv2;messageid=1"
    other = "19:c@thread.tacv2;messageid=2"  # another reply chain of the same channel: the same lane
    results = await asyncio.gather(*(throttle.call(chain if n % 2 else other, lambda n=n: call("c", n))
                                     for n in range(20)),
                                   *(throttle.call("a:chat", lambda n=n: call("a", n)) for n in range(3)))
    assert results == list(range(20)) + list(range(3))
    times = [at for where, _, at in done if where == "c"]
    assert [n for where, n, _ in done if where == "c"] == list(range(20))  # in order
    assert all(times[i + 7] - times[i] >= 0.25 - 1e-3 for i in range(len(times) - 7))
    chat = [at for where, _, at in done if where == "a"]
    assert chat[-1] < times[7]  # another conversation didn't wait behind this one
    assert place(chain) == place(other) == "19:c@thread.tacv2"


async def test_the_throttle_retries_429s_only_and_gives_up_after_its_retries():
    throttle = Throttle(retries=2)
    attempts: list[int] = []

    async def busy() -> str:
        attempts.append(1)
        raise throttled({"Retry-After": "0"})
    with pytest.raises(HttpOperationError):
        await throttle.call("a:chat", busy)
    assert len(attempts) == 3 and throttle.waited == 2

    async def broken() -> str:
        attempts.append(2)
        raise throttled({"Retry-After": "0"}, status=403)
    with pytest.raises(HttpOperationError):
        await throttle.call("a:chat", broken)
    assert attempts.count(2) == 1


# an answer steered by a poisoned page: a link, an image, an autolink and a bare URL to
# evil.example, beside a link to the cited source and one to the profile's own domain
EVIL = ("Pay [click](https://evil.example/x) ![p](https://evil.example/p.png) <https://evil.example> "
        "or https://evil.example/bare, see [the policy](https://help.example/returns) "
        "and [our shop](https://www.shop.example/sale) [1].")
SOURCE = Citation("Returns", "https://help.example/returns", "…", "helpcenter", "en/returns")


def test_only_allowed_and_cited_links_open_and_no_image_is_shown():
    profile = dataclasses.replace(PROFILE, allowed_domains=("shop.example",))
    [card] = render(reply(EVIL, citations=(SOURCE,)), profile)
    encoded = json.dumps(card)
    text = card["body"][0]["text"]
    assert re.findall(r"\]\((\S+?)\)", text) == ["https://help.example/returns", "https://www.shop.example/sale"]
    assert "evil.example" not in encoded and "click (https[:]//evil[.]example/x)" in text
    assert "https[:]//evil[.]example/bare" in text and " p " in text  # the image: its alt text only
    assert '"Image"' not in encoded and "p.png" not in text.replace("p[.]png", "")


def test_without_allowed_domains_only_the_cited_source_opens():
    [card] = render(reply(EVIL, citations=(SOURCE,)), PROFILE)
    text = card["body"][0]["text"]
    assert re.findall(r"\]\((\S+?)\)", text) == ["https://help.example/returns"]
    assert "our shop (https[:]//www[.]shop[.]example/sale)" in text
