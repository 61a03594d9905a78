"""Turns text into index terms for BM25, the same way for documents and queries.

Latin-script words are lowercased, French-style elisions (l', d', qu', jusqu'...) cut off,
stop words of the text's language dropped, then stemmed with that language's Snowball
stemmer and stripped of accents (so "délai" and "delai" meet). Chinese and Japanese runs
have no spaces: they are segmented with jieba's search mode, which also emits the shorter
words inside long ones. The resulting terms are stored space-separated in an SQLite FTS5
table, whose own tokenizer then only splits on the spaces; a chunk's terms come in two
fields (`chunk_terms`) so that a match in the title can weigh more than one in the body.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from typing import Mapping

import Stemmer

from knowledge import spelling

STEMMERS = {"en": "english", "fr": "french", "de": "german", "es": "spanish", "it": "italian",
            "pt": "portuguese", "nl": "dutch"}
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
WORD = re.compile(r"[^\W_]+", re.UNICODE)
# An elided article, pronoun or conjunction glued to the next word by an apostrophe
# ("l'accès", "qu'il", "jusqu'à"): without this cut "l" and "d" become frequent terms.
ELISION = re.compile(r"\b(?:[cdjlmnst]|qu|jusqu|lorsqu|puisqu|quoiqu|presqu)['’](?=\w)", re.IGNORECASE)

# Function words and the conversational wrapping of a question ("how do I", "comment
# puis-je", "bonjour"): they say nothing about the topic, and in an OR query they pull in
# passages that share only them. Lists are per language because "son", "sur" or "pour"
# are content words in English; contraction tails ("doesn't" -> "doesn", "t") are here too.
STOPWORDS = {
    "en": frozenset("""
a about above after again against all am an and any are aren as at be because been before being
below between both but by can cannot could couldn did didn do does doesn doing don down during each
few for from further had hadn has hasn have haven having he her here hers herself him himself his
how i if in into is isn it its itself just ll me more most my myself no nor not now of off on once
only or other our ours ourselves out over own re s same shan she should shouldn so some such t than
that the their theirs them themselves then there these they this those through to too under until
up ve very was wasn we were weren what when where which while who whom why will with won would
wouldn you your yours yourself yourselves d m o y
hello hi hey please thanks thank
""".split()),
    "fr": frozenset("""
a ai aie aient aies ait as au aura aurai auraient aurais aurait auras aurez auriez aurions aurons
auront aux avaient avais avait avec avez aviez avions avoir avons ayant ayez ayons c ce ceci cela
celà ces cet cette d dans de des du elle elles en es est et étaient étais était étant été êtes
étiez étions être eu eue eues eûmes eurent eus eusse eussent eusses eussiez eussions eut eût eûtes
eux fûmes furent fus fusse fussent fusses fussiez fussions fut fût fûtes ici il ils j je l la le
les leur leurs lui m ma mais me même mes moi mon n ne nos notre nous on ont ou où par pas pour qu
que quel quelle quelles quels qui s sa sans se sera serai seraient serais serait seras serez
seriez serions serons seront ses soi soient sois soit sommes son sont soyez soyons suis sur t ta
te tes toi ton tu un une vos votre vous y à
comment pourquoi quoi bonjour merci svp
""".split()),
}


MAX_CORRECTED = 40  # words: a question is short; a long paste is not worth correcting word by word


@functools.cache
def _stemmer(language: str) -> Stemmer.Stemmer:
    return Stemmer.Stemmer(STEMMERS.get(language, "english"))


@functools.cache
def _jieba():
    import jieba  # loaded on first Chinese text only: it builds its dictionary (~1 s)

    jieba.setLogLevel(60)
    return jieba


def fold(text: str) -> str:
    """Lowercase and strip accents (NFKD, drop combining marks)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _latin_terms(text: str, language: str, known: Mapping[str, int] | None = None) -> list[str]:
    stop = STOPWORDS.get(language, STOPWORDS["en"])
    words = [w for w in WORD.findall(ELISION.sub("", text.lower())) if w not in stop]
    stemmer = _stemmer(language)
    out = [fold(stem) for stem in stemmer.stemWords(words)]
    if known and len(words) <= MAX_CORRECTED:  # an unknown word: the known term one typo away
        out = [spelling.correct(word, term, known, lambda ws: [fold(t) for t in stemmer.stemWords(ws)])
               for word, term in zip(words, out)]
    return [t for t in out if t]


# Chinese function words and question wrapping ("请问", "怎么", "吗"): jieba keeps them as
# words, and in a short question they are most of its terms.
CJK_STOPWORDS = frozenset("""
的 了 吗 呢 吧 啊 呀 哦 嗯 是 在 我 你 您 他 她 它 我们 你们 他们 要 想 可以 能 能否 能不能 会 可 怎么 怎样 如何
什么 哪 哪里 哪儿 哪些 哪个 请 请问 到 和 与 或 或者 有 没有 也 都 就 还 把 被 给 对 从 这 那 这个 那个 这些
那些 一 个 些 吗 么 得 地 着 过 为 为什么 是否 一下 以 及 其 该 之 于 上 下 里 中 时 后 前
""".split())


def _cjk_terms(run: str) -> list[str]:
    return [w for w in _jieba().cut_for_search(run) if w.strip() and WORD.fullmatch(w) and w not in CJK_STOPWORDS]


def terms(text: str, language: str = "en", known: Mapping[str, int] | None = None) -> list[str]:
    """Index terms of `text`, in order (repeats kept: BM25 counts them). With `known` (an
    index's vocabulary, for questions), misspelled words are corrected to known terms."""
    text = unicodedata.normalize("NFKC", text)
    out: list[str] = []
    position = 0
    for match in CJK.finditer(text):
        out += _latin_terms(text[position:match.start()], language, known)
        out += _cjk_terms(match.group())
        position = match.end()
    out += _latin_terms(text[position:], language, known)
    return out


def chunk_terms(title: str, heading: str, text: str, language: str = "en") -> tuple[list[str], list[str]]:
    """Index terms of a chunk as (head, body): the document title with the heading path, then the text."""
    head = " ".join(p for p in (title, heading) if p)
    return terms(head, language), terms(text, language)

