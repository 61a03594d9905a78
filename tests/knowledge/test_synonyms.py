"""The support thesaurus (knowledge/synonyms.py): what a question's words may be found as."""
from __future__ import annotations

from knowledge import lexical, spelling, synonyms


def expansion(question: str, language: str) -> tuple[list[str], synonyms.Expansion]:
    terms = lexical.terms(question, language)
    return terms, synonyms.expansion(terms, language)


def test_a_customers_word_is_found_as_the_help_centers():
    terms, same = expansion("How do I follow my package?", "en")
    assert terms == ["follow", "packag"]
    assert same.covers("follow", {"track", "parcel"}) and same.covers("packag", {"track", "parcel"})
    assert not same.covers("follow", {"parcel"})
    assert {"track", "parcel"} <= set(same.extra_terms(terms))


def test_a_phrase_matches_only_where_its_words_follow_each_other():
    terms, same = expansion("What's the deadline to send back an order?", "en")
    assert same.covers("send", {"return"}) and same.covers("back", {"return"}) and same.covers("deadlin", {"window"})
    terms, same = expansion("Can you send me my invoice?", "en")
    assert not same.covers("send", {"return"})
    terms, same = expansion("Can you send the lamp back?", "en")  # the words, not one after the other
    assert terms == ["send", "lamp", "back"] and not same.covers("send", {"return"})


def test_bm25_searches_other_words_but_not_the_words_of_phrases_apart():
    """"return" searched for "back", "bring" and "give" found "bring items back" before the
    return window."""
    terms, same = expansion("what about returns?", "en")
    assert same.covers("return", {"send", "back"}) and same.extra_terms(terms) == []
    terms, same = expansion("Can I send back a lamp?", "en")
    assert same.extra_terms(terms) == ["return"]


def test_every_member_of_a_phrase_must_be_there():
    terms, same = expansion("Combien de temps pour une livraison ?", "fr")
    assert same.covers("del", {"combien", "temp"}) is False  # "délai" is not in the question
    terms, same = expansion("Quel délai pour une livraison ?", "fr")
    assert same.covers("del", {"combien", "temp"}) and not same.covers("del", {"combien"})


def test_words_of_no_group_and_other_languages_expand_to_nothing():
    assert expansion("Do you sell gift cards?", "en")[1] == synonyms.NONE
    assert expansion("suivre colis", "en")[1] == synonyms.NONE  # French groups only for French questions
    terms, same = expansion("怎么查询物流？", "zh")
    assert terms == ["查询", "物流"] and same.covers("查询", {"追踪"}) and same.covers("物流", {"包裹"})


def test_a_groups_word_is_not_corrected_into_an_indexed_one():
    """"combien" (in no passage) was one edit from "combin", and "combien de temps" no longer
    meant "délai"."""
    vocabulary = {"combin": 3, "temp": 5, "del": 9}
    assert lexical.terms("combien de temps", "fr", vocabulary)[0] == "combin"  # what the index alone does
    assert lexical.terms("combien de temps", "fr", synonyms.known(vocabulary, "fr")) == ["combien", "temp"]
    assert spelling.known_share(["combien"], vocabulary) == 0.0  # the index's own figures are unchanged
