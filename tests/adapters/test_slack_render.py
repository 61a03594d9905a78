"""Slack rendering: Markdown to mrkdwn, splitting under Slack's limits, replies as Block Kit."""
from __future__ import annotations

import dataclasses
import re

import pytest

from adapters.links import LinkPolicy
from adapters.slack_render import BLOCK_LIMIT, TEXT_LIMIT, mrkdwn, parse_value, render, split
from bot.profiles import load_profiles
from bot.settings import DEFAULT_PROFILES
from bot.types import Action, Citation, Handoff, HandoffReason, Reply

PROFILE = load_profiles(DEFAULT_PROFILES).get("support")
ALLOW = LinkPolicy.of(["x.example"])


@pytest.mark.parametrize("markdown, expected", [
    ("**30 days** and *really*", "*30 days* and _really_"),
    ("# Returns", "*Returns*"),
    ("see [the policy](https://x.example/a?b=1&c=2)", "see <https://x.example/a?b=1&amp;c=2|the policy>"),
    ("a < b & c > d", "a &lt; b &amp; c &gt; d"),
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("[x](javascript:alert(1))", "[x](javascript:alert(1))"),  # not a link: left as inert text
    ("- one\n- two\n  - nested", "• one\n• two\n    • nested"),
    ("1. first\n2. second", "1. first\n2. second"),
    ("> quoted", "> quoted"),
    ("```\nif a < b:\n```", "```\nif a &lt; b:\n```"),
    ("| a | b |\n|---|---|\n| 1 | 2 |", "a | b\n1 | 2"),
    ("`<@U123>`", "`&lt;@U123&gt;`"),  # no mention smuggled through code
    ("~~old~~", "~old~"),
])
def test_markdown_becomes_mrkdwn(markdown, expected):
    assert mrkdwn(markdown, ALLOW) == expected


def balanced(piece: str) -> bool:
    return all(piece.count(a) == piece.count(b) for a, b in (("<", ">"),)) and piece.count("```") % 2 == 0


def test_split_keeps_words_links_and_code_whole():
    link = "<https://help.example/returns?lang=en&amp;ref=slack|the returns policy>"
    text = "\n\n".join(f"Paragraph {n}: " + " ".join(["word"] * 120) + f" {link}." for n in range(20))
    text += "\n\n```\n" + "\n".join(f"line {n} of code" for n in range(400)) + "\n```"
    pieces = split(text)
    assert len(pieces) > 3 and all(len(p) <= TEXT_LIMIT for p in pieces)
    assert all(balanced(p) for p in pieces)
    assert all(p.count(link) == len(re.findall("<https", p)) for p in pieces)
    words = " ".join(pieces).replace("```", " ").split()
    assert words == text.replace("```", " ").split()


def test_one_endless_word_is_cut_between_characters_not_inside_an_escape():
    text = "x" * 2990 + "&amp;" * 10
    pieces = split(text)
    assert all(len(p) <= TEXT_LIMIT for p in pieces) and "".join(pieces) == text
    assert all(not re.search(r"&(a|am|amp)?$", p) for p in pieces[:-1])


def reply(answer: str, **fields) -> Reply:
    return Reply(id="r_0123456789abcdef", conversation="slack:T1:C1:1.2", answer=answer, language="en", **fields)


def test_a_reply_has_sections_sources_and_buttons_carrying_its_ids():
    citation = Citation("Returns & refunds", "https://help.example/returns", "…", "helpcenter", "en/returns",
                        "2026-10-02")
    [blocks] = render(reply("**30 days**", citations=(citation,)), PROFILE)
    assert [b["type"] for b in blocks] == ["section", "context", "actions"]
    sources = blocks[1]["elements"][0]["text"]
    assert sources == ("*Sources*\n1. <https://help.example/returns|Returns &amp; refunds> · helpcenter, "
                       "updated 2026-10-02")
    actions = blocks[2]["elements"]
    assert [a["action_id"] for a in actions] == ["feedback_up", "feedback_down", "handoff"]
    assert {parse_value(a["value"]) for a in actions} == {("r_0123456789abcdef", "slack:T1:C1:1.2")}


def test_declines_offer_a_human_notices_and_handoffs_offer_nothing():
    offer = Action("handoff", "Talk to a human", "handoff", "missing_knowledge")
    [declined] = render(reply("Sorry", answered=False, actions=(offer,)), PROFILE)
    assert [e["action_id"] for e in declined[-1]["elements"]] == ["handoff"]
    [notice] = render(reply("Your message is empty.", answered=False), PROFILE)
    assert [b["type"] for b in notice] == ["section"]
    [handed] = render(reply("A person will answer", answered=False,
                            handoff=Handoff(HandoffReason.CUSTOMER_REQUEST)), PROFILE)
    assert [b["type"] for b in handed] == ["section"]


def test_small_talk_has_nothing_to_rate_or_hand_over():
    [hello] = render(reply("Hello! Ask me about delivery, returns…", plain=True), PROFILE)
    assert [b["type"] for b in hello] == ["section"]


def test_a_huge_reply_becomes_several_messages_of_at_most_50_blocks():
    messages = render(reply("\n\n".join(["word " * 590] * 60)), PROFILE, share=True)
    assert len(messages) == 2 and all(len(m) <= BLOCK_LIMIT for m in messages)
    assert messages[-1][-1]["type"] == "actions" and messages[-1][-1]["elements"][0]["action_id"] == "share"


@pytest.mark.parametrize("value", ["", "{}", '{"r": "x", "c": "k"}', "[1]", '{"r": "r_1"}'])
def test_foreign_button_values_are_refused(value):
    with pytest.raises(ValueError):
        parse_value(value)


# an answer steered by a poisoned page: a link, an image, an autolink and a bare URL to
# evil.example, beside a link to the cited source and one to the profile's own domain
EVIL = ("Pay [click](https://evil.example/x) ![p](https://evil.example/p.png) <https://evil.example> "
        "or https://evil.example/bare, see [the policy](https://help.example/returns) "
        "and [our shop](https://www.shop.example/sale) [1].")
SOURCE = Citation("Returns", "https://help.example/returns", "…", "helpcenter", "en/returns")


def test_only_allowed_and_cited_links_open_and_no_image_is_shown():
    profile = dataclasses.replace(PROFILE, allowed_domains=("shop.example",))
    [blocks] = render(reply(EVIL, citations=(SOURCE,)), profile)
    text = "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section")
    links = re.findall(r"<(https?://[^|>]+)", text)
    assert links == ["https://help.example/returns", "https://www.shop.example/sale"]
    assert "evil.example" not in text and "click (https[:]//evil[.]example/x)" in text
    assert "https[:]//evil[.]example/bare" in text and " p " in text  # the image: its alt text only
    assert not any(b["type"] == "image" for b in blocks)
    assert "<https://help.example/returns|Returns>" in str(blocks[-2])  # the sources block


def test_without_allowed_domains_only_the_cited_source_opens():
    [blocks] = render(reply(EVIL, citations=(SOURCE,)), PROFILE)
    text = blocks[0]["text"]["text"]
    assert re.findall(r"<(https?://[^|>]+)", text) == ["https://help.example/returns"]
    assert "our shop (https[:]//www[.]shop[.]example/sale)" in text
