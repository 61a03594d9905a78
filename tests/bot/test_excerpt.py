"""What the extractive answer quotes from a long passage (bot/answering.py `excerpt`)."""
from __future__ import annotations

from bot.answering import EXCERPT, WHOLE_SECTION, excerpt
from bot.runtime import SAMPLE_DIR

FILLER = " ".join(f"Our shop in town number {n} sells candles and mirrors." for n in range(12))


def test_a_sentence_announcing_a_list_is_quoted_with_its_items():
    text = (f"{FILLER}\n\nThe warranty lasts five years for every lamp. The warranty does not cover:\n\n"
            "- bulbs;\n- batteries;\n- damage from a fall.\n\nOther things follow here in a sentence.")
    assert len(text) > WHOLE_SECTION
    quoted = excerpt("How long is the warranty?", text, "en")
    assert "does not cover:" in quoted
    assert "- bulbs;" in quoted and "- batteries;" in quoted and "- damage from a fall." in quoted


def test_a_list_too_long_to_quote_drops_the_sentence_that_announces_it():
    items = "\n".join(f"- exception number {n} with a long description of what it leaves out" for n in range(40))
    text = f"{FILLER}\n\nThe warranty lasts five years for every lamp. The warranty does not cover:\n\n{items}"
    assert len(items) > 2 * EXCERPT
    quoted = excerpt("How long is the warranty?", text, "en")
    assert "five years" in quoted
    assert not quoted.rstrip().endswith(":") and "does not cover" not in quoted



def test_the_sentences_quoted_are_those_holding_the_questions_words_or_their_synonyms():
    """"Comment suivre mon colis ?" quoted the sample's tracking section from its paragraph on
    parcels sent apart ("colis" and "suivi"), leaving out the one that answers it ("numéro de
    suivi", "page de suivi", no "colis"): "suivre" and "suivi" have different stems, one group
    (knowledge/synonyms.py)."""
    page = (SAMPLE_DIR / "helpcenter" / "fr" / "livraison.md").read_text(encoding="utf-8")
    section = page.split("## Suivre votre colis", 1)[1].split("\n## ", 1)[0].strip()
    assert len(section) > WHOLE_SECTION
    quoted = excerpt("Comment suivre mon colis ?", section, "fr")
    assert quoted.startswith("Dès que votre commande quitte l'entrepôt")
