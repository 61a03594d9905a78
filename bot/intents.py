"""Recognizes a plain request for a human, in the languages we serve.

Deliberately narrow: "talk to a human", "parler à un conseiller", "转人工". A question
*about* people ("who is your CEO?") must not trigger a handoff.
"""
from __future__ import annotations

import re

HUMAN_REQUEST = re.compile(
    r"""
    \b(talk|speak|chat|connect\ me|put\ me\ through|transfer\ me)\b[^.?!]{0,20}\b(to|with)\b[^.?!]{0,15}
        \b(a\ |an\ |some\ |real\ |live\ )?(human|person|people|agent|someone|somebody|representative|operator)\b
    | \b(human|real\ person|live\ agent|representative)\s*(please|pls|now)?\s*[.!?]*$
    | ^\s*(agent|human|operator)\s*[.!?]*\s*$
    | \b(parler|discuter|échanger|etre\ mis|être\ mis)\b[^.?!]{0,20}\b(à|a|avec)\b[^.?!]{0,15}
        \b(un|une|quelqu'un|quelqu’un|personne|humain|conseill(er|ère)|agent|opérateur|operateur)\b
        (?!\s+(de\ la\ livraison|du\ magasin))
    | \b(un\ humain|un\ conseiller|une\ conseillère|une\ vraie\ personne)\b\s*(svp|s'il\ vous\ pla[iî]t)?\s*[.!?]*$
    | 转人工|人工客服|真人客服|找人工|要人工
    | \b(mit\ einem\ (menschen|mitarbeiter)\ sprechen)\b
    | \b(hablar\ con\ (una\ persona|un\ agente|un\ humano))\b
    """,
    re.IGNORECASE | re.VERBOSE,
)


def wants_human(text: str) -> bool:
    """True when the message plainly asks for a person."""
    return bool(HUMAN_REQUEST.search(text.strip()))
