"""Tables that name what the question names: the precise passage among topical ones.

Help centers put their per-case facts in tables: one row per country, plan or payment
method, one column per fact (a delivery time, a price). Retrieval finds the topic well
but not always the table: "Combien coûte la livraison en Allemagne ?" ranks the FAQ entry
on delivery methods first (it mentions Germany in a list, with "from €3.90") and the table
of shipping costs fifth, so the answer quoted had no price for Germany.

A table row *names* a question term when the term is in the row's first cell and not in
the table's heading or header row (those describe every row) nor in every row. Among
the hits ranked within `BAND` of the best, in the best hit's language, a table naming a
question term is quoted first, when the best hit is that table, or mentions the term
too, or comes from the same document: the question is then about that row, not only
about the topic. A question about the return period that happens to name a country
keeps the returns page, which says nothing about countries.

When several tables name the term (delivery times and shipping costs both have a row per
country), the one whose values are of the kind the question asks for wins: an amount of
money for "how much", "combien coûte", "运费多少"; a duration for "how long", "délai",
"多久". The best passage keeps its place if it is one of those that fit best (the return
shipping table also has a price per country, and "寄到比利时的运费是多少？" asks for the
shipping costs table that retrieval ranked first); else the one whose heading and columns
are closest to the question (the embedder's cosine).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from knowledge import lexical

BAND = 0.5  # share of the best hit's fused score a table must reach to be considered

MONEY = re.compile(r"\d[\d\s.,]*\s?(?:€|eur\b|euros?\b|\$|usd\b|chf\b|£|元)|(?:€|\$|£)\s?\d", re.IGNORECASE)
DURATION = re.compile(r"\d[\d\s.,]*(?:\s*(?:à|to|-|–|至|或)\s*\d+)?\s*(?:business\s+|working\s+)?"
                      r"(?:days?|jours?|hours?|heures?|h\b|weeks?|semaines?|minutes?|min\b|天|工作日|小时|周)"
                      r"|next\s+(?:business\s+)?day|jour\s+ouvré\s+suivant|次日|下一个工作日",
                      re.IGNORECASE)
ASKS = {
    "money": re.compile(r"how much|\bcosts?\b|\bprices?\b|\bfees?\b|\bcharges?\b|\bexpensive\b|\bpay for\b"
                        r"|combien\s+(?:co[uû]te|ça\s+co[uû]te|dois-je\s+payer|faut-il\s+payer)|\bprix\b|\bfrais\b"
                        r"|\btarifs?\b|\bcher\b|多少钱|运费|费用|价格|收费|价钱|多少费", re.IGNORECASE),
    "duration": re.compile(r"how long|how many days|how soon|how fast|\bwhen\b|combien de temps|combien de jours"
                           r"|\bdélais?\b|\bdelais?\b|\bquand\b|sous combien|多久|几天|多长时间|什么时候|时效",
                           re.IGNORECASE),
}
KINDS = {"money": MONEY, "duration": DURATION}


@dataclass(frozen=True)
class Table:
    """A Markdown table of a passage: its header cells and its body rows' cells."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def kinds(self) -> set[str]:
        """What its value cells (all but the first column) hold: money, durations."""
        values = " | ".join(cell for row in self.rows for cell in row[1:])
        return {kind for kind, pattern in KINDS.items() if pattern.search(values)}


def tables(text: str) -> list[Table]:
    """The Markdown tables in `text` (a header row, a `---` separator, body rows)."""
    found: list[Table] = []
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith("|"):
            block.append(line)
            continue
        if len(block) >= 3 and set(block[1].replace("|", "").strip()) <= set("-: "):
            cells = [tuple(c.strip() for c in row.strip().strip("|").split("|")) for row in block]
            found.append(Table(cells[0], tuple(cells[2:])))
        block = []
    return found


def named(terms: set[str], text: str, language: str) -> set[str]:
    """The question `terms` that a table row of `text` names in its first cell, and that
    neither its header nor every one of its rows holds."""
    out: set[str] = set()
    for table in tables(text):
        header = set(lexical.terms(" ".join(table.header), language))
        labels = [set(lexical.terms(row[0], language)) for row in table.rows if row]
        for term in terms - header:
            hits = sum(term in label for label in labels)
            if 0 < hits < len(labels):
                out.add(term)
    return out


def emphasize(text: str, terms: set[str], language: str) -> str:
    """`text` with the table rows that name one of `terms` (as `named` does) in bold, so
    that "shipping to Germany?" answered with the whole costs table shows Germany's row."""
    wanted = named(terms, text, language)
    if not wanted:
        return text
    lines = text.splitlines()
    for n, line in enumerate(lines):
        cells = line.strip().strip("|").split("|") if line.lstrip().startswith("|") else []
        if len(cells) < 2 or set(line.replace("|", "").strip()) <= set("-: ") \
                or not wanted & set(lexical.terms(cells[0], language)):
            continue
        bold = [f" **{c.strip()}** " if c.strip() and "**" not in c else c for c in cells]
        lines[n] = "|" + "|".join(bold) + "|"
    return "\n".join(lines)


def asks(question: str) -> set[str]:
    """The kinds of value the question asks for (money, duration), from its wording."""
    return {kind for kind, pattern in ASKS.items() if pattern.search(question)}


@dataclass(frozen=True)
class Candidate:
    """A passage of the hits as this module sees it."""

    index: int
    text: str
    language: str
    document: str
    heading: str
    score: float


def precise(question: str, candidates: Sequence[Candidate], language: str,
            closeness: Callable[[Candidate], float]) -> int:
    """The index of the candidate to quote first: 0 (the best) unless a table names what
    the question names (module docstring). `closeness(candidate)` is the question's
    cosine with the candidate's heading and columns, asked only to break a tie."""
    if len(candidates) < 2:
        return 0
    best = candidates[0]
    terms = set(lexical.terms(question, best.language or language))
    if not terms:
        return 0
    naming = [(c, named(terms, c.text, c.language or language)) for c in candidates
              if c.score >= BAND * best.score and c.language == best.language]
    naming = [(c, found) for c, found in naming if found]
    if not naming:
        return 0
    if naming[0][0] is not best:
        mentioned = set(lexical.terms(best.text, best.language or language))
        naming = [(c, found) for c, found in naming if found & mentioned or c.document == best.document]
        if not naming:
            return 0
    wanted = asks(question)
    fits = {c.index: len(wanted & set().union(*(t.kinds() for t in tables(c.text)))) for c, _ in naming}
    top = [c for c, _ in naming if fits[c.index] == max(fits.values())]
    if best in top:  # the best passage names the row and holds what is asked as well as any
        return 0
    return top[0].index if len(top) == 1 else max(top, key=closeness).index


def heading_text(candidate: Candidate) -> str:
    """What `closeness` compares with the question: the heading and the tables' columns."""
    columns = "; ".join(", ".join(t.header) for t in tables(candidate.text))
    return f"{candidate.heading}: {columns}" if candidate.heading else columns
