"""Q&A entries across languages: evidence only for a question that leans on the entry's key word.

A Q&A entry's question is its title, and a look-alike shares its topic word but asks for
something else: "你们卖礼品卡吗？" (gift cards) found "Do you offer gift wrapping?" (confidence
0.86), "可以按我的尺寸定制灯罩吗？" (a made-to-measure lampshade) "Do you have special prices
for large or professional orders?". The title's key word is the one whose removal moves the
title's own vector most (*wrapping*, *prices*; numbers aside), and a question about the
entry leans on it: the title without that word must not be closer to the question than the
whole title (language-centred cosines, knowledge/crosslingual.py), within the same 0.01 as
product names (knowledge/subjects.py `WORD_SLACK`). Only an entry in another language than
the question is checked; one that fails is left out of the candidates, as a product sheet
whose product is not named, so the engine answers from what remains or declines; when it
was the best match, nothing is evidence (knowledge/retrieval.py): "可以给朋友买一张礼品券吗？" (a
gift voucher) found the gift-wrapping entry first, and without it the discounts entry
answered at 0.53.

Measured on the sample Q&A form (13 entries in English and French) with 32 Chinese, French
and English questions that the other language's entry answers and 19 look-alikes (bench
figures in docs/benchmarks.md, 2026-12-07): against the English entry, every Chinese or
French question it answers is 0.009-0.40 farther from the title without its key word
("你们寄到欧盟以外的国家吗？" 0.009 without *ship*, "你们的配送时间是多久？" 0.40 without
*delivery*); 7 look-alikes are 0.015-0.091 closer ("你们卖礼品卡吗？" 0.074 without
*wrapping*, "旧灯可以折价换新灯吗？" 0.015 without *products*), the others are not told apart
(from 0.006 closer to 0.225 farther: "你们会匹配其他网店的价格吗？" leans on *prices*). Against the
French twin, Chinese questions scatter more (answered ones up to 0.081 closer): one twin left
out leaves the other to answer, which every answered question kept. Within one language
nothing separates them, so it is not checked there: a question shares words with the title
beside the key word ("Can my husband pick up my click & collect order?" is 0.03 closer
without *store*, "Do you sell gift cards?" 0.009 without *wrapping*). Tried and dropped: a
bar of 0.10 farther (it also left out entries for "你们只卖新品吗？" and "怎么拿到发票？"), the
same word-drop on every word of the title or of the question, against the title, the whole
passage or its best sentence, and the question-to-title cosine as a paraphrase score.
"""
from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from knowledge import lexical
from knowledge.crosslingual import LanguageSpace
from knowledge.embeddings import Embedder
from knowledge.index import StoredChunk
from knowledge.subjects import WORD_SLACK

LATIN = re.compile(r"[0-9A-Za-zÀ-ÖØ-öø-ÿ]+(?:['’-][0-9A-Za-zÀ-ÖØ-öø-ÿ]+)*")
QUESTION_MARKS = ("?", "？")


class Answerable:
    """Q&A entries' titles, with and without their key word, as topic vectors kept per title."""

    def __init__(self, embedder: Embedder, space: LanguageSpace, keep: int = 2048):
        self.embedder = embedder
        self.space = space
        self.keep = keep
        self._titles: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}

    def off_entry(self, vector: np.ndarray, language: str, stored: Mapping[int, StoredChunk]) -> set[int]:
        """The Q&A entries among `stored`, in another language than the question's (`vector`,
        in `language`), whose key word the question does not lean on (module docstring)."""
        entries = {rowid: chunk for rowid, chunk in stored.items()
                   if is_entry(chunk) and chunk.language and chunk.language != language}
        if not entries:
            return set()
        question = self.space.query_topic(vector, language)
        off = set()
        for rowid, chunk in entries.items():
            pair = self._title(chunk.title, chunk.language)
            if pair is not None and float(pair[1] @ question) > float(pair[0] @ question) + WORD_SLACK:
                off.add(rowid)
        return off

    def _title(self, title: str, language: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The title's topic vector and that of the title without its key word (None: a title
        of fewer than two words), both embedded in one batch the first time."""
        key = f"{language}\x1f{title}"
        if key not in self._titles:
            rests = without_each_word(title, language)
            found = None
            if rests:
                vectors = self.embedder.passages([title, *rests])
                central = int(np.argmin(vectors[1:] @ vectors[0]))  # the word whose removal moves the title most
                found = (self.space.passage_topic(vectors[0], language),
                         self.space.passage_topic(vectors[1 + central], language))
            self._titles[key] = found
            while len(self._titles) > self.keep:
                self._titles.pop(next(iter(self._titles)))
        return self._titles[key]


def is_entry(chunk: StoredChunk) -> bool:
    """Is this passage a Q&A entry (knowledge/readers.py `read_qa_form`): its document is
    titled by a question, and it sits under no heading of its own?"""
    return chunk.title.rstrip().endswith(QUESTION_MARKS) and not chunk.chunk.heading


def without_each_word(title: str, language: str) -> list[str]:
    """The title with one of its content words left out, for each one that holds no digit
    (index terms of its own: not a stop word; Chinese words cut by jieba); none when fewer
    than two: "Do you offer gift wrapping?" gives "Do you gift wrapping?", "Do you offer
    wrapping?", "Do you offer gift ?" (as measured: the space before the mark is kept)."""
    spans = [m.span() for m in LATIN.finditer(title)
             if not any(c.isdigit() for c in m.group()) and lexical.terms(m.group(), language)]
    for match in lexical.CJK.finditer(title):
        at = match.start()
        for word in lexical._jieba().cut(match.group()):  # loaded once by lexical; a plain cut, no overlaps
            if word not in lexical.CJK_STOPWORDS and lexical.WORD.fullmatch(word) \
                    and not any(c.isdigit() for c in word):
                spans.append((at, at + len(word)))
            at += len(word)
    if len(spans) < 2:
        return []
    return [" ".join((title[:a] + title[b:]).split()) for a, b in sorted(spans)]
