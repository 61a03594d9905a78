"""Which links may open: the profile's allowed domains and the cited sources, nothing else."""
from __future__ import annotations

import dataclasses

import pytest

from adapters.links import LinkPolicy, defang, policy_for
from bot.profiles import load_profiles

POLICY = LinkPolicy.of(["help.example", "https://shop.example/", "bücher.example"],
                       ["https://docs.other/returns#top"])


@pytest.mark.parametrize("url", [
    "https://help.example/x", "http://help.example", "https://a.b.help.example/p?q=1",
    "HTTPS://HELP.EXAMPLE./x", "https://shop.example:8443/sale", "https://docs.other/returns",
    "https://docs.other/returns/", "https://xn--bcher-kva.example/",  # the allowed IDN, as punycode
])
def test_allowed_hosts_their_subdomains_and_cited_urls_open(url):
    assert POLICY.allows(url)


@pytest.mark.parametrize("url", [
    "https://evil.example", "https://evilhelp.example", "https://help.example.evil.example",
    "https://help.example@evil.example/", "https://user:pw@help.example/",  # userinfo: never
    "https://help.example\\@evil.example", "https://help.example%2eevil.example",
    "https://hеlp.example/",  # a Cyrillic е
    "https://xn--hlp-kcd.example/",  # its punycode
    "https://bücher.example/",  # Unicode in a link: only the punycode form opens
    "javascript:alert(1)", "data:text/html,x", "ftp://help.example/", "//help.example/x", "mailto:a@help.example",
    "https://docs.other/other", "https://help.example:99999/", "https://help .example/", "",
])
def test_anything_else_does_not(url):
    assert not POLICY.allows(url)


def test_no_policy_opens_nothing():
    assert not LinkPolicy().allows("https://help.example/")


def test_refused_links_and_bare_urls_are_defanged():
    assert defang("https://evil.example/a.png") == "https[:]//evil[.]example/a[.]png"
    assert POLICY.plain("https://evil.example/x", "click") == "click (https[:]//evil[.]example/x)"
    assert POLICY.plain("https://evil.example", "https://evil.example") == "https[:]//evil[.]example"
    text = ("Go to https://evil.example/x, www.evil.com or evil.com/pay. Node.js, e.g. v2.0, returns.pdf "
            "and support@shop.example stay; https://help.example/ok too.")
    assert POLICY.inert(text) == (
        "Go to https[:]//evil[.]example/x, www[.]evil[.]com or evil[.]com/pay. Node.js, e.g. v2.0, returns.pdf "
        "and support@shop.example stay; https://help.example/ok too.")


def test_profiles_read_allowed_domains(tmp_path):
    path = tmp_path / "profiles.toml"
    path.write_text('[profiles.support]\nname = "S"\nallowed_domains = ["shop.example"]\n'
                    '[profiles.hr]\nname = "HR"\n', encoding="utf-8")
    profiles = load_profiles(path)
    assert profiles.get("support").allowed_domains == ("shop.example",)
    assert profiles.get("hr").allowed_domains == ()


def test_a_reply_may_link_its_profile_s_domains_its_sources_and_its_contact_page(tmp_path):
    path = tmp_path / "profiles.toml"
    path.write_text('[profiles.support]\nname = "S"\nallowed_domains = ["shop.example"]\n'
                    'contact = { en = "https://help.example/contact", fr = "support@shop.example" }\n',
                    encoding="utf-8")
    policy = policy_for(load_profiles(path).get(), ["https://docs.example/returns"])
    assert policy.allows("https://www.shop.example/") and policy.allows("https://docs.example/returns")
    assert policy.allows("https://help.example/contact") and not policy.allows("https://help.example/other")
    bare = dataclasses.replace(load_profiles(path).get(), allowed_domains=(), contact={})
    assert not policy_for(bare).allows("https://www.shop.example/")


# What a model steered by a poisoned page might write, grounded enough to pass the answer
# check: a link and an image to evil.example, a bare URL, and a link to the cited source.
# The channel tests (test_slack.py, test_telegram.py, test_teams.py) send it through the real
# SDKs to their fake platform servers and check what arrived.
PLANTED_ANSWER = ("Go to My account > My orders, open the order and click Return an item, or use the "
                  "[returns form](https://evil.example/returns) ![returns form](https://evil.example/form.png) with "
                  "your order number and email address, see www.evil.example/help or the "
                  "[returns page](https://help.maison-lumiere.example/en/returns) [1].")
PLANTED_QUESTION = "How do I return an item?"
CITED = "https://help.maison-lumiere.example/en/returns"
