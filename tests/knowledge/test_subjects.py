"""knowledge/subjects.py: a product named by a word of its name written in the question."""
from __future__ import annotations

from knowledge.subjects import without_each_word, written_names

NAMES = {"Rivage Rattan Pendant Light": "en", "Atelier Floor Lamp": "en", "LED Candle Bulb E14": "en",
         "Smart LED Bulb E27": "en", "LED Filament Bulb E27 Globe": "en", "Saône Stoneware Vase 30 cm": "en",
         "Solar Garden Lantern": "en"}
VOCABULARY = {"led": 3, "e27": 2, "rivag": 1, "ateli": 1, "atelier": 1, "e14": 1, "saon": 1, "garden": 1}


def test_a_name_written_as_a_name_names_its_product():
    assert written_names("La suspension Rivage est-elle en rotin ?", NAMES, VOCABULARY) \
        == {"Rivage Rattan Pendant Light"}
    assert written_names("L'ampoule flamme e14 est-elle dimmable ?", NAMES, VOCABULARY) == {"LED Candle Bulb E14"}
    assert written_names("Saône花瓶多高？", NAMES, VOCABULARY) == {"Saône Stoneware Vase 30 cm"}


def test_a_common_word_a_shared_word_or_a_frequent_one_names_nothing():
    assert written_names("Proposez-vous des ateliers pour apprendre ?", NAMES, VOCABULARY) == set()
    assert written_names("Do you sell garden chairs?", NAMES, VOCABULARY) == set()  # not written as a name
    assert written_names("Is the E27 bulb dimmable?", NAMES, VOCABULARY) == set()  # two products' word
    assert written_names("你们卖LED灯吗？", NAMES, {**VOCABULARY, "led": 9}) == set()  # in many passages
    assert written_names("", NAMES, VOCABULARY) == set()


def test_a_name_in_lower_case_counts_only_when_any_case_is_asked_for():
    assert written_names("combien coûte le lampadaire atelier ?", NAMES, VOCABULARY) == set()
    assert written_names("combien coûte le lampadaire atelier ?", NAMES, VOCABULARY, any_case=True) \
        == {"Atelier Floor Lamp"}
    assert written_names("Proposez-vous des ateliers ?", NAMES, VOCABULARY, any_case=True) == set()  # another word


def test_a_name_is_tried_without_each_word_but_its_sizes_and_codes():
    assert without_each_word("Atelier Floor Lamp") == ["Floor Lamp", "Atelier Lamp", "Atelier Floor"]
    assert without_each_word("Saône Stoneware Vase 30 cm") == ["Stoneware Vase 30 cm", "Saône Vase 30 cm",
                                                               "Saône Stoneware 30 cm"]
    assert without_each_word("Dinner Candles, Set of 6")[1] == "Dinner Set of 6"
    assert without_each_word("Lamp E14") == []  # one word left: nothing to compare
