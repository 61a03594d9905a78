"""Words customers use for what a help center calls otherwise: "How do I follow my package?"
asks what "Tracking your parcel" answers, "renvoyer un article" what "Comment retourner un
article" does.

Each group holds words and phrases that mean the same thing in a support question, in one
language; a phrase matches where the question holds its words one after the other (as
index terms: stemmed, stop words left out). The groups are applied to the question only,
never to the index: a question term matched by a group counts as found in a passage that
holds another member of it (`Expansion.covers`), and BM25 searches the other members too,
so the index and its terms are the same with or without this module.

Only words interchangeable in a customer's question belong here, never related things: a
gift card is not gift wrapping, a voucher not a promo code, changing an address not
changing an e-mail address; a look-alike that shares a word with a page is a decline
(docs/answers.md), and a loose group would make it an answer.
"""
from __future__ import annotations

import collections
import functools
from dataclasses import dataclass
from typing import Mapping

from knowledge import lexical

GROUPS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "en": (
        ("track", "follow", "trace"),
        ("parcel", "package", "packet", "shipment"),
        ("return", "send back", "bring back", "give back"),
        ("refund", "reimburse", "money back"),
        ("delivery", "deliver", "shipping", "ship"),
        ("cost", "price", "fee"),
        ("warranty", "guarantee"),
        ("invoice", "receipt", "bill"),
        ("damaged", "broken", "defective", "faulty"),
        ("lost", "missing"),
        ("deadline", "time limit", "window"),
        ("promo code", "discount code", "coupon"),
        ("pick up", "collect"),
        ("exchange", "swap"),
        ("store", "shop"),
        ("order", "purchase"),
        ("item", "product", "article"),
    ),
    "fr": (
        ("suivre", "suivi", "tracer", "pister"),
        ("colis", "paquet"),
        ("retourner", "retour", "renvoyer"),
        ("livraison", "livrer", "expédition", "expédier"),
        ("frais", "coût", "prix", "tarif"),
        ("magasin", "boutique"),
        ("facture", "reçu"),
        ("réduction", "remise", "rabais"),
        ("code promo", "code de réduction", "bon de réduction"),
        ("abîmé", "endommagé", "cassé", "défectueux"),
        ("perdu", "égaré", "disparu"),
        ("délai", "combien de temps"),
        ("retirer", "récupérer"),
        ("commande", "achat"),
        ("article", "produit"),
    ),
    "zh": (
        ("物流", "快递", "包裹"),
        ("查询", "追踪", "跟踪"),
        ("退货", "退回"),
        ("保修", "质保", "保固"),
        ("发票", "收据"),
        ("门店", "实体店", "商店"),
        ("损坏", "破损"),
        ("商品", "产品"),
    ),
}


@dataclass(frozen=True)
class Expansion:
    """What each term of a question may be found as: `others[term]` are the other members of
    its group, each as its index terms (all of them must be there)."""

    others: Mapping[str, tuple[tuple[str, ...], ...]]

    def covers(self, term: str, have: set[str] | frozenset[str]) -> bool:
        """Is the question's `term`, or another member of its group, among a passage's terms?"""
        return term in have or any(set(member) <= have for member in self.others.get(term, ()))

    def found(self, terms: set[str] | list[str], have: set[str] | frozenset[str]) -> set[str]:
        """Those of the question's `terms` that a passage's terms `have` hold (`covers`)."""
        return {t for t in terms if self.covers(t, have)}

    def extra_terms(self, query_terms: list[str]) -> list[str]:
        """The other members of one word not already in the question, for BM25. Not phrases:
        BM25 would search their words apart ("return" searched for "back", "bring", "give"
        found "bring items back" under *How to return an item* before the return window)."""
        seen = set(query_terms)
        extra = []
        for members in self.others.values():
            for member in members:
                if len(member) == 1 and member[0] not in seen:
                    seen.add(member[0])
                    extra.append(member[0])
        return extra


NONE = Expansion({})


def expansion(query_terms: list[str], language: str) -> Expansion:
    """The groups that `query_terms` (the question's index terms, in order) match."""
    others: dict[str, list[tuple[str, ...]]] = {}
    for group in _groups(language):
        for member in group:
            span = _find(member, query_terms)
            if span is None:
                continue
            rest = [m for m in group if m != member]
            for term in query_terms[span:span + len(member)]:
                others.setdefault(term, [])
                others[term] += [m for m in rest if m not in others[term]]
    return Expansion({term: tuple(members) for term, members in others.items()}) if others else NONE


def _find(member: tuple[str, ...], terms: list[str]) -> int | None:
    """Where `member`'s terms stand one after the other in `terms`, or None."""
    size = len(member)
    for at in range(len(terms) - size + 1):
        if tuple(terms[at:at + size]) == member:
            return at
    return None


def known(vocabulary: Mapping[str, int], language: str) -> Mapping[str, int]:
    """`vocabulary` with the terms of `language`'s groups, for the spelling correction of a
    question (knowledge/spelling.py): a group's word is a word, not a typo of an indexed
    one ("combien" was corrected to "combin", and "combien de temps" no longer meant "délai")."""
    extra = _terms(language)
    return collections.ChainMap(vocabulary, extra) if extra else vocabulary  # type: ignore[arg-type]


@functools.cache
def _terms(language: str) -> dict[str, int]:
    return {term: 1 for group in _groups(language) for member in group for term in member}


@functools.cache
def _groups(language: str) -> tuple[tuple[tuple[str, ...], ...], ...]:
    """Each group of `language` with its members as index terms (a member that is all stop
    words, or the same terms as another, is left out)."""
    groups = []
    for group in GROUPS.get(language, ()):
        members = tuple(dict.fromkeys(t for t in (tuple(lexical.terms(w, language)) for w in group) if t))
        if len(members) > 1:
            groups.append(members)
    return tuple(groups)
