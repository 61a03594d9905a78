"""knowledge/tables.py: which passage a question naming a table's row is answered from."""
from __future__ import annotations

from knowledge import tables

TIMES = """Orders leave the warehouse the same day.

| Destination | Carrier | Delivery time |
|---|---|---|
| France | Colissimo | 2 to 3 business days |
| Germany | DHL | 4 to 6 business days |
| Switzerland | DHL | 5 to 8 business days |
"""
COSTS = """| Destination | Shipping cost | Free from |
|---|---|---|
| France | €5.90 | €79 |
| Germany | €9.90 | €129 |
| Switzerland | €19.90 | never |
"""
FAQ = "We deliver to France, Germany and Switzerland. Delivery costs from €3.90."
RETURNS = "You have 30 days from delivery to return any item, in its original packaging."


def candidate(index: int, text: str, document: str, score: float, heading: str = "", language: str = "en"):
    return tables.Candidate(index, text, language, document, heading, score)


def never(candidate) -> float:
    raise AssertionError("closeness is only asked to break a tie between tables")


def test_tables_are_read_with_their_header_and_rows():
    (table,) = tables.tables(TIMES)
    assert table.header == ("Destination", "Carrier", "Delivery time")
    assert [row[0] for row in table.rows] == ["France", "Germany", "Switzerland"]
    assert table.kinds() == {"duration"}
    assert tables.tables(COSTS)[0].kinds() == {"money"}
    assert tables.tables("| a | b |\n| c | d |") == []  # no separator: not a table


def test_a_row_is_named_by_its_first_cell_not_by_the_header_or_every_row():
    assert tables.named({"germani", "ship"}, COSTS, "en") == {"germani"}
    assert tables.named({"destin"}, COSTS, "en") == set()  # the header describes every row
    assert tables.named({"franc"}, "| Where | Fee |\n|---|---|\n| France north | €1 |\n| France south | €2 |",
                        "en") == set()  # in every row: names none of them


def test_what_a_question_asks_for():
    assert tables.asks("How much is shipping to Germany?") == {"money"}
    assert tables.asks("Combien coûte la livraison en Allemagne ?") == {"money"}
    assert tables.asks("寄到瑞士要多久？") == {"duration"}
    assert tables.asks("Quel est le délai pour la Suisse ?") == {"duration"}
    assert tables.asks("Do you deliver to Germany?") == set()


def test_the_table_naming_the_row_leads_when_the_best_passage_mentions_it_too():
    hits = [candidate(0, FAQ, "faq", 1.0), candidate(1, COSTS, "delivery", 0.6, "Shipping costs")]
    assert tables.precise("How much is shipping to Germany?", hits, "en", never) == 1


def test_a_table_far_below_the_best_or_in_another_language_is_not_taken():
    far = [candidate(0, FAQ, "faq", 1.0), candidate(1, COSTS, "delivery", 0.4)]
    assert tables.precise("How much is shipping to Germany?", far, "en", never) == 0
    other = [candidate(0, FAQ, "faq", 1.0), candidate(1, COSTS, "delivery", 0.9, language="fr")]
    assert tables.precise("How much is shipping to Germany?", other, "en", never) == 0


def test_a_best_passage_that_does_not_mention_what_the_row_names_keeps_its_place():
    """The return period does not depend on the country: the returns page answers it."""
    hits = [candidate(0, RETURNS, "returns", 1.0), candidate(1, COSTS, "delivery", 0.9)]
    assert tables.precise("How long can I return an item from Germany?", hits, "en", never) == 0


def test_of_two_tables_naming_the_row_the_one_holding_what_is_asked_wins():
    hits = [candidate(0, COSTS, "delivery", 1.0, "Shipping costs"), candidate(1, TIMES, "delivery", 0.7, "Times")]
    assert tables.precise("How long does shipping to Switzerland take?", hits, "en", never) == 1
    assert tables.precise("How much is shipping to Switzerland?", hits, "en", never) == 0


def test_without_a_kind_asked_the_closer_heading_breaks_the_tie():
    hits = [candidate(0, FAQ, "delivery", 1.0), candidate(1, COSTS, "delivery", 0.8, "Shipping costs"),
            candidate(2, TIMES, "delivery", 0.7, "Times")]
    closeness = {"Shipping costs": 0.80, "Times": 0.85}
    assert tables.precise("Germany?", hits, "en", lambda c: closeness[c.heading]) == 2


def test_a_best_passage_naming_the_row_and_fitting_as_well_keeps_its_place():
    """Return shipping also has a price per country: a question on shipping costs keeps the
    costs table retrieval ranked first, whatever the headings' cosines."""
    returns = COSTS.replace("Shipping cost", "Return shipping")
    hits = [candidate(0, COSTS, "delivery", 1.0, "Shipping costs"), candidate(1, returns, "returns", 0.6, "Returns")]
    assert tables.precise("How much is shipping to Germany?", hits, "en", never) == 0


def test_the_rows_naming_what_the_question_names_are_in_bold():
    shown = tables.emphasize(COSTS, {"germani"}, "en")
    assert "| **Germany** | **€9.90** | **€129** |" in shown.splitlines()
    assert "| France | €5.90 | €79 |" in shown.splitlines()  # the others as they were
    assert shown.splitlines()[:2] == COSTS.splitlines()[:2]  # header and separator untouched
    assert tables.emphasize(COSTS, {"destin"}, "en") == COSTS  # the header names no row
    assert tables.emphasize(FAQ, {"germani"}, "en") == FAQ  # no table
