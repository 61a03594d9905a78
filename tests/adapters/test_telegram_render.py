"""Telegram rendering: every output is checked by the fake Bot API's HTML parser, which
rejects what Telegram rejects (unknown tags, bad nesting, a lone `<` or `&`)."""
from __future__ import annotations

import dataclasses
import random

import pytest

from adapters.links import LinkPolicy
from adapters.telegram_render import LIMIT, keyboard, preview, render, split_html, to_html
from bot.profiles import load_profiles
from bot.settings import DEFAULT_PROFILES
from bot.types import Action, Citation, Handoff, HandoffReason, Reply
from tests.fakes.telegram_api import TelegramError, parse_html

PROFILE = load_profiles(DEFAULT_PROFILES).get()
ALLOW = LinkPolicy.of(["x.test", "example.test"])


def visible(part: str) -> str:
    return parse_html(part)[0]


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@pytest.mark.parametrize("markdown, shown", [
    ("a < b && c > d", "a < b && c > d"),
    ("<b>unclosed <i>tags", "<b>unclosed <i>tags"),
    ("<script>alert(1)</script> &amp;amp; &lt", "<script>alert(1)</script> &amp; &lt"),
    ("`x<y` and\n\n```\nif a<b && c:\n```", "x<y and if a<b && c:"),
    ('[q](https://x.test/?a=1&b="2") [bad](javascript:alert(1))', "q [bad](javascript:alert(1))"),
])
def test_what_telegram_would_reject_is_escaped(markdown, shown):
    html = to_html(markdown, ALLOW)
    text, _ = parse_html(html)  # raises like Telegram on anything it would reject
    assert text.split() == shown.split()


def test_markdown_becomes_telegram_entities():
    html = to_html("# Returns\n\nYou have **30 days**, *really*, ~~no~~ `code`.\n\n- one\n- two\n  1. sub\n\n"
                   "> quoted\n\n```python\nx = 1\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                   "[site](https://example.test/p?a=1&b=2)", ALLOW)
    text, entities = parse_html(html)
    assert [e["type"] for e in entities] == ["bold", "bold", "italic", "strikethrough", "code", "blockquote",
                                             "pre", "text_link"]
    assert entities[-1]["url"] == "https://example.test/p?a=1&b=2" and entities[-2]["language"] == "python"
    assert "• one\n• two\n  1. sub" in text and "a | b\n1 | 2" in text


def test_code_inside_a_link_is_not_nested():
    assert to_html("[`run`](https://x.test)", ALLOW) == '<a href="https://x.test">run</a>'


def test_split_keeps_words_links_and_tags_whole():
    link = '<a href="https://example.test/a?b=1&amp;c=2">a link with several words</a>'
    html = "<b>" + " ".join(f"word{n} {link}" if n % 7 == 0 else f"word{n}" for n in range(1500)) + "</b>"
    parts = split_html(html, 1000)
    assert len(parts) > 5
    words: list[str] = []
    for part in parts:
        text, entities = parse_html(part)
        assert units(text) <= 1000 and entities[0]["type"] == "bold"  # reopened in every part
        assert all(e["length"] == len("a link with several words") for e in entities if e["type"] == "text_link")
        words += text.split()
    assert words == visible(html).split()


def test_split_prefers_paragraphs():
    paragraphs = [f"Paragraph {n}: " + "lorem ipsum " * 30 for n in range(40)]
    parts = split_html(to_html("\n\n".join(paragraphs)))
    assert len(parts) > 1 and all(visible(p).rstrip().endswith("ipsum") for p in parts)


def test_random_documents_split_whole_and_valid():
    pieces = ["alpha", "<x>", "a&b", "😀emoji", "**bold words**", "*it*", "[link](https://e.test/?a=1&b=2)",
              "`c<d`", "\n\n", "\n- item", "\n> quote\n\n", "中文字符"]
    rng = random.Random(7)
    for _ in range(120):
        markdown = " ".join(rng.choice(pieces) for _ in range(rng.randint(1, 600)))
        limit = rng.choice([40, 300, LIMIT])
        html = to_html(markdown)
        parts = split_html(html, limit)
        assert all(units(visible(p)) <= limit for p in parts)
        assert " ".join(visible(p) for p in parts).split() == visible(html).split()


def test_a_word_longer_than_a_message_is_cut_not_lost():
    parts = split_html("x" * 10_000 + " 😀" * 3000)
    assert [units(visible(p)) <= LIMIT for p in parts] == [True] * len(parts)
    assert "".join(visible(p).replace(" ", "") for p in parts) == "x" * 10_000 + "😀" * 3000


def reply(**changes) -> Reply:
    base = dict(id="r_0123456789abcdef", conversation="telegram:1:2", answer="You have **30 days** [1].",
                language="en")
    return Reply(**{**base, **changes})


def test_an_answer_has_sources_feedback_and_a_human_button():
    rendered = render(reply(citations=(
        Citation("Returns & refunds", "https://help.test/returns?x=1&y=2", "", "helpcenter", updated_at="2026-10-02"),
        Citation("Internal <notes>", "notes/internal.md", "", "wiki"))), PROFILE)
    [part] = rendered.parts
    text, entities = parse_html(part)
    assert "Sources\n1. Returns & refunds · updated 2026-10-02\n2. Internal <notes>" in text
    assert {"type": "text_link", "url": "https://help.test/returns?x=1&y=2"} in [
        {k: e[k] for k in ("type", "url")} for e in entities if e["type"] == "text_link"]
    buttons = [b for row in rendered.keyboard.inline_keyboard for b in row]
    assert [(b.text, b.callback_data) for b in buttons] == [
        ("👍", "fb:up:r_0123456789abcdef"), ("👎", "fb:down:r_0123456789abcdef"),
        ("Talk to a human", "human:customer_request")]
    assert all(len(b.callback_data.encode()) <= 64 for b in buttons)


def test_declines_keep_their_handoff_and_handoffs_get_no_buttons():
    declined = reply(answered=False, language="fr",
                     actions=(Action("handoff", "Parler à un humain", "handoff", "missing_knowledge"),))
    [[button]] = keyboard(declined, PROFILE).inline_keyboard
    assert (button.text, button.callback_data) == ("Parler à un humain", "human:missing_knowledge")
    assert keyboard(reply(answered=False, handoff=Handoff(HandoffReason.CUSTOMER_REQUEST)), PROFILE) is None


def test_small_talk_has_nothing_to_rate_or_hand_over():
    assert keyboard(reply(answer="Hello! Ask me about delivery, returns…", plain=True), PROFILE) is None


def test_a_preview_is_one_valid_message():
    text = preview("**bold** start " + "word " * 2000)
    assert units(visible(text)) <= LIMIT and text.startswith("<b>bold</b> start word")
    with pytest.raises(TelegramError):
        parse_html("<b>" + "word " * 10)  # the checker does reject an unclosed tag


def test_a_proposed_action_gets_yes_and_no_only():
    action = "t_0123456789abcdef"
    asked = reply(actions=(Action("tool_yes", "Oui", "confirm", action), Action("tool_no", "Non", "confirm", action)))
    [row] = keyboard(asked, PROFILE).inline_keyboard
    assert [(b.text, b.callback_data) for b in row] == [("Oui", f"ok:yes:{action}"), ("Non", f"ok:no:{action}")]
    assert all(len(b.callback_data.encode()) <= 64 for b in row)


# an answer steered by a poisoned page: a link, an image, an autolink and a bare URL to
# evil.example, beside a link to the cited source and one to the profile's own domain
EVIL = ("Pay [click](https://evil.example/x) ![p](https://evil.example/p.png) <https://evil.example> "
        "or https://evil.example/bare, see [the policy](https://help.example/returns) "
        "and [our shop](https://www.shop.example/sale) [1].")
SOURCE = Citation("Returns", "https://help.example/returns", "…", "helpcenter", "en/returns")


def links_in(rendered) -> list[str]:
    return [e["url"] for part in rendered.parts for e in parse_html(part)[1] if e["type"] == "text_link"]


def test_only_allowed_and_cited_links_open_and_no_image_is_shown():
    profile = dataclasses.replace(PROFILE, allowed_domains=("shop.example",))
    rendered = render(reply(answer=EVIL, citations=(SOURCE,)), profile)
    [part] = rendered.parts
    text = visible(part)
    assert links_in(rendered) == ["https://help.example/returns", "https://www.shop.example/sale",
                                  "https://help.example/returns"]  # the answer's two, then the sources'
    assert "evil.example" not in part and "click (https[:]//evil[.]example/x)" in text
    assert "https[:]//evil[.]example/bare" in text and " p " in text  # the image: its alt text only
    assert "<img" not in part and "p.png" not in part


def test_without_allowed_domains_only_the_cited_source_opens():
    rendered = render(reply(answer=EVIL, citations=(SOURCE,)), PROFILE)
    assert links_in(rendered) == ["https://help.example/returns"] * 2
    assert "our shop (https[:]//www[.]shop[.]example/sale)" in visible(rendered.parts[0])
