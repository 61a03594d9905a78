"""Recognizes messages that are noise rather than a question: filler repeated at length,
or keys run along a keyboard row ("asdfghjkl qwertyuiop").

A 20,000-character paste of one word over and over still embeds as *something* and
retrieves a page; quoting it would be noise out for noise in. A message is filler when it
is long and its words barely vary. Misspellings are not noise: knowledge/spelling.py
corrects them against the index's vocabulary.
"""
from __future__ import annotations

import re

WORD = re.compile(r"\w+", re.UNICODE)
MIN_WORDS = 40  # shorter messages are judged by retrieval like any other
MAX_DISTINCT_SHARE = 0.25  # a real message this long uses far more distinct words
LONG_CHARS = 4000  # beyond this, a real question is rare: judge variety more strictly
LONG_DISTINCT_SHARE = 0.1


def is_filler(text: str) -> bool:
    """True for long text whose words barely vary (the same few words repeated)."""
    words = [w.lower() for w in WORD.findall(text)]
    if len(words) < MIN_WORDS:
        return _repeated_characters(text) or _keyboard_mash(words)
    share = len(set(words)) / len(words)
    return share < MAX_DISTINCT_SHARE or (len(text) > LONG_CHARS and share < LONG_DISTINCT_SHARE * 2)


def _repeated_characters(text: str) -> bool:
    """One character run over and over ("aaaaaaaa…", "!!!!!!!!…", "哈哈哈哈哈哈…")."""
    compact = "".join(text.split())
    return len(compact) >= 20 and len(set(compact)) <= 3


# Letter rows of QWERTY and AZERTY keyboards, each read both ways.
ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "azertyuiop", "qsdfghjklm", "wxcvbn")
NEIGHBOURS = {row[i:i + 2] for row in ROWS for i in range(len(row) - 1)} \
    | {row[i + 1] + row[i] for row in ROWS for i in range(len(row) - 1)}
MASH_LETTERS = 5  # "were" and "asdf" are four letters long; a word of five along a row is rare


def _keyboard_mash(words: list[str]) -> bool:
    """Half the words or more are keys run along a keyboard row ("asdf", "qwertyuiop"):
    every pair of neighbouring letters in such a word neighbours on a row too."""
    mashed = [w for w in words if len(w) >= MASH_LETTERS and w.isascii() and w.isalpha()
              and all(w[i:i + 2] in NEIGHBOURS for i in range(len(w) - 1))]
    return bool(mashed) and 2 * len(mashed) >= len(words)
