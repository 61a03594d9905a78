"""Hybrid retrieval: BM25 (SQLite FTS5, or its port to PostgreSQL) and dense embeddings, fused.

Fusion is a convex combination of normalized scores over the union of both rankings' top
`depth` candidates. It keeps how much better the best passages are, which ranks throw away:
reciprocal-rank fusion scored MRR@10 0.91 and 0.62 on stackfaq and cnil_fr, this 0.94 and
0.68 when both were compared (bench/retrieval.py measures the current figures). BM25 is divided by the query's best BM25, since
its floor is 0: a passage with none of the terms. Cosines have no such floor (every passage
sits around 0.7-0.9 with e5), so they are min-max scaled over the dense top `depth`. Every
candidate gets its real cosine, also one found by BM25 alone. The dense score is the raw
cosine when the passages compared are all in one language, and adds the language-centred
cosine only when they are in several (`Retriever._ranking`).

Both rankings are filtered the same way before fusion: only the sources a bot profile
may read, and only public documents when the answer will be seen in a public place.
Each `Hit` keeps the evidence the engine uses to decide whether to answer at all: the
dense similarity and how much of the question's vocabulary the passage covers.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from knowledge import lexical, spelling, synonyms, tables
from knowledge.answerable import Answerable, is_entry
from knowledge.embeddings import Embedder
from knowledge.crosslingual import LanguageSpace, space_for
from knowledge.index import DenseView, StoredChunk
from knowledge.indexes import KnowledgeIndex
from knowledge.subjects import Subjects
from knowledge.language import detect

# The share of BM25 in each mode's score: dense is the stronger signal, BM25 adds exact
# names and rare words. Hybrid results are flat for BM25 shares 0.15-0.3 on both eval sets
# (MRR@10 within 0.005 on stackfaq, 0.015 on cnil_fr); 0.25 sits in the middle.
WEIGHTS = {"lexical": 1.0, "dense": 0.0, "hybrid": 0.25}
# A passage's translation scores 0.49-0.86 (centred cosine) with it on the sample help
# center, and a passage's nearest one in another language that says something else 0.27-0.40
# (product sheets, written in English only): knowledge/retrieval.py Retriever.localized.
TRANSLATION = 0.45
NEARLY = 0.9
CLOSER, RUNNERS_UP = 0.03, 2  # Retriever._closer_translation
SECTION_RUNNERS_UP = 7  # _named_section: the rest of the first page of hits (k = 8)
HEADED_BM25 = 3  # _headed_section: BM25's first passages
MIX = 1.0  # centred cosine + this × the language-adjusted raw cosine, over passages in several languages


@dataclass(frozen=True)
class Hit:
    """One retrieved passage and the evidence for it."""

    stored: StoredChunk
    score: float  # the fused score used for ranking
    dense: float  # mean of the query's cosines with the passage and its document's title (0: no vector yet)
    lexical: float  # BM25 score (0 when the passage has none of the query's terms)
    coverage: float  # share of the query's distinct terms found in the passage (or a synonym: knowledge/synonyms.py)
    relevance: float = 0.0  # `dense` rescaled for the (question, passage) language pair, in [0, 1]
    centred: float = 0.0  # the cosine with each language's mean vector removed (knowledge/crosslingual.py)
    known: float = 1.0  # share of the question's terms the index knows at all (same for every hit)


class Retriever:
    """Searches one index (SQLite or PostgreSQL: knowledge/indexes.py) with one `Embedder`."""

    def __init__(self, index: KnowledgeIndex, embedder: Embedder, depth: int = 50):
        self.index = index
        self.embedder = embedder
        self.depth = depth
        self._norms: tuple[int, np.ndarray] | None = None
        self._vectors: dict[str, np.ndarray] = {}
        self.mix = MIX

    @property
    def space(self) -> LanguageSpace:
        return space_for(self.embedder)

    @functools.cached_property
    def subjects(self) -> Subjects:
        return Subjects(self.embedder, self.space)

    @functools.cached_property
    def answerable(self) -> Answerable:
        return Answerable(self.embedder, self.space)

    def search(self, query: str, *, sources: Sequence[str] | None = None, public_only: bool = False,
               k: int = 8, mode: str = "hybrid", language: str = "") -> list[Hit]:
        """The `k` best passages for `query`, best first."""
        if mode not in WEIGHTS:
            raise ValueError(f"unknown retrieval mode {mode!r}: choose one of {', '.join(WEIGHTS)}")
        language = language or detect(query)[0] or "en"
        vocabulary = self.index.vocabulary()
        query_terms, same = _question_terms(query, language, vocabulary)
        lex = self.index.lexical(query_terms + same.extra_terms(query_terms), sources, public_only,
                                 self.depth) if mode != "dense" else []
        vector = self._vector(query)
        # Every candidate's cosines: the engine judges a passage found by BM25 alone by them too.
        raw, centred, ranking, dense = self._scores(vector, language, sources, public_only, [r for r, _ in lex])
        if mode == "lexical":
            dense = []
        fused = _fuse(lex, dense, ranking, WEIGHTS[mode])
        candidates = sorted(fused, key=fused.__getitem__, reverse=True)[:3 * k]
        candidates += [r for r, _ in lex[:HEADED_BM25] if r not in candidates]  # for _headed/_named_section
        stored = self.index.chunks(candidates)
        off = self.subjects.off_subject(vector, language, stored, query, vocabulary)  # knowledge/subjects.py
        entries = self.answerable.off_entry(vector, language, stored)  # knowledge/answerable.py
        if candidates and candidates[0] in entries:  # the best match is a look-alike: the next one is no answer
            return []
        off |= entries
        ranked = [r for r in candidates if r not in off]
        terms_of = functools.cache(lambda rowid: _terms_of(stored[rowid]))  # each passage's terms, once a search
        head_of = functools.cache(lambda rowid: _head_terms(stored[rowid]))  # its title's and heading's, once
        lead = _headed_section(lex, ranked, stored, query_terms, same, language, head_of) or \
            _named_section(lex, ranked, stored, query_terms, same, language, terms_of, head_of)
        if lead:  # the section takes the first passage's place and score; that one, first by its form
            # rather than by what it says, leaves the hits (it was quoted beside the section)
            fused[ranked[lead]] = fused[ranked[0]]
            ranked = [ranked[lead], *ranked[1:lead], *ranked[lead + 1:]]
        best = ranked[:k]
        bm25 = dict(lex)
        wanted = set(query_terms)
        known = spelling.known_share(lexical.terms(query, language), vocabulary)  # as written, uncorrected
        return [Hit(stored[r], fused[r], raw.get(r, 0.0), bm25.get(r, 0.0), _coverage(wanted, terms_of(r), same),
                    self.space.relevance(raw[r], language, stored[r].language) if r in raw else 0.0,
                    centred.get(r, 0.0), known)
                for r in best if r in stored]

    def judge(self, query: str, hits: Sequence[Hit], language: str = "") -> list[Hit]:
        """The same passages with their evidence measured against another question: a
        follow-up joined to the previous question is judged on what the user just asked."""
        language = language or detect(query)[0] or "en"
        vocabulary = self.index.vocabulary()
        terms, same = _question_terms(query, language, vocabulary)
        known = spelling.known_share(lexical.terms(query, language), vocabulary)
        vector = self._vector(query)
        rows = self._rows([h.stored.rowid for h in hits])
        judged = []
        for hit in hits:
            row = rows.get(hit.stored.rowid)
            raw = float(row @ vector) if row is not None else 0.0
            judged.append(dataclasses.replace(
                hit, dense=raw, relevance=self.space.relevance(raw, language, hit.stored.language) if raw else 0.0,
                coverage=_coverage(set(terms), _terms_of(hit.stored), same), known=known))
        return judged

    def localized(self, query: str, hits: Sequence[Hit], language: str, *, sources: Sequence[str] | None = None,
                  public_only: bool = False, fallback: str = "") -> list[Hit]:
        """The same passages, the best one in the user's language when the knowledge holds it
        in that language too: its translation, or a passage of that language about as close
        to the question. A French question whose English page ranks first is quoted from the
        French page saying the same; a Chinese question about invoices (no Chinese page) keeps
        the English one.

        A translation is found among the passages, not the hits: the nearest passage of
        `language` to the best hit (language-centred cosines, knowledge/crosslingual.py) whose
        own nearest passage in the best hit's language is that hit again (mutual nearest
        neighbours, as in bilingual lexicon induction), and close enough to be one
        (`TRANSLATION`): on the sample help center every section's translation is found so,
        and a product sheet, written only in English, has none. The translation is looked for
        first: "Acceptez-vous PayPal ?" finds the English *Accepted payment methods* first, and
        the French gift-wrapping entry, a question of the same form, is within 0.02 of it in
        centred cosine; it was quoted (at 0.99) while that test came first. Without a
        translation, a passage of the user's language that close, or else ranked nearly as
        high (`NEARLY` of the best's fused score), is quoted: "包裹丢了怎么办？" gets the
        Chinese delivery page's section on lost parcels (0.71) rather than the English Q&A
        entry (0.75) that says the same. With neither, the same is done for `fallback` (the
        profile's language): "那保修呢？" is quoted from the English warranty page rather than
        the French one it found first.
        """
        if not hits or not language:
            return list(hits)
        if hits[0].stored.language == language:
            return self._closer_translation(query, hits, language, sources, public_only)
        best = hits[0]
        rowid = self._translation(best.stored.rowid, best.stored.language, language, sources, public_only)
        if rowid is None:  # no translation: a passage in the user's language as close, or ranked nearly as high
            equal = _first_in(language, hits, lambda hit: hit.centred >= best.centred - 0.02)
            if equal is not None:
                return equal
            nearly = _first_in(language, hits, lambda hit: hit.score >= NEARLY * best.score)
            if nearly is None and fallback and fallback not in (language, best.stored.language):
                # nothing in the user's language: the profile's own language rather than a third one
                return self.localized(query, hits, fallback, sources=sources, public_only=public_only)
            return nearly or list(hits)
        found = self._translated(query, rowid, best.score, best.centred, best.known, language)
        if found is None:
            return list(hits)
        return [found, *(h for h in hits if h.stored.rowid != rowid and h.stored.rowid != best.stored.rowid)]

    def precise(self, query: str, hits: Sequence[Hit], language: str) -> list[Hit]:
        """The same passages, led by a table among them that has a row for what the question
        names ("shipping to Germany": the shipping costs table, not an FAQ entry listing
        Germany among the countries served), taking the best's place and score
        (knowledge/tables.py)."""
        candidates = [tables.Candidate(i, h.stored.chunk.text, h.stored.language, h.stored.chunk.document_id,
                                       h.stored.chunk.heading, h.score) for i, h in enumerate(hits)]
        chosen = tables.precise(query, candidates, language, lambda c: float(
            self._heading(tables.heading_text(c), c.language) @ self._vector(query)))
        if chosen == 0:
            return list(hits)
        lead = dataclasses.replace(hits[chosen], score=hits[0].score)
        return [lead, *(h for i, h in enumerate(hits) if i != chosen)]

    def _heading(self, text: str, language: str) -> np.ndarray:
        key = f"\x1e{language}\x1f{text}"
        cached = self._vectors.get(key)
        if cached is None:
            cached = self.embedder.passages([text])[0]
            self._vectors[key] = cached
        return cached

    def _closer_translation(self, query: str, hits: Sequence[Hit], language: str, sources: Sequence[str] | None,
                            public_only: bool) -> list[Hit]:
        """`hits`, led by a passage in the user's language, unless a runner-up in another
        language is clearly closer to the question (`CLOSER` in centred cosine) and has a
        translation in the user's language: that translation leads then, since the same
        text in two languages is one piece of evidence. "Quels moyens de paiement
        acceptez-vous ?" ranks the French *Sécurité des paiements* first by a hair (0.853
        fused, 0.348 centred) and the English *Accepted payment methods* second (0.844,
        0.401): the answer is the English section's French translation, *Moyens de paiement
        acceptés*, not the security section. A translation holding fewer of the question's
        words than the best does not lead: "Do you accept American Express?" is quoted from
        *Accepted payment methods* (`_named_section`), not from the English twin of the French
        entry "Livrez-vous en dehors de l'Union européenne ?", closer in centred cosine only
        because its question has the same form."""
        best = hits[0]
        for hit in hits[1:RUNNERS_UP + 1]:
            if hit.stored.language == language or hit.centred < best.centred + CLOSER:
                continue
            rowid = self._translation(hit.stored.rowid, hit.stored.language, language, sources, public_only)
            if rowid is None or rowid == best.stored.rowid:
                return list(hits)
            found = self._translated(query, rowid, best.score, hit.centred, best.known, language)
            if found is None or found.coverage < best.coverage:
                return list(hits)
            return [found, *(h for h in hits if h.stored.rowid != rowid)]
        return list(hits)

    def _translated(self, query: str, rowid: int, score: float, centred: float, known: float,
                    language: str) -> Hit | None:
        """Passage `rowid`, a translation taking the place of a hit (its rank score and centred
        cosine), judged against `query`; None when it left the index meanwhile."""
        stored = self.index.chunks([rowid]).get(rowid)
        if stored is None:
            return None
        return self.judge(query, [Hit(stored, score, 0.0, 0.0, 0.0, centred=centred, known=known)], language)[0]

    def _translation(self, rowid: int, source_language: str, language: str, sources: Sequence[str] | None,
                     public_only: bool) -> int | None:
        """The passage of `language` that is `rowid`'s mutual nearest neighbour, if close enough."""
        vector = self._rows([rowid]).get(rowid)
        if vector is None:
            return None
        there = self._nearest(vector, source_language, language, sources, public_only)
        if there is None or there[1] < TRANSLATION:
            return None
        back_vector = self._rows([there[0]]).get(there[0])
        back = self._nearest(back_vector, language, source_language, sources, public_only) \
            if back_vector is not None else None
        return there[0] if back is not None and back[0] == rowid else None

    def _rows(self, rowids: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored vectors of these passages (those still in the index)."""
        view = self.index.dense_candidates(np.zeros(self.embedder.dim, np.float32), None, False, list(rowids), 0)
        found = {}
        for rowid in rowids:
            at = int(np.searchsorted(view.rowids, rowid))
            if at < len(view.rowids) and view.rowids[at] == rowid:
                found[rowid] = view.matrix[at]
        return found

    def _nearest(self, vector: np.ndarray, from_language: str, to_language: str, sources: Sequence[str] | None,
                 public_only: bool) -> tuple[int, float] | None:
        """The passage of `to_language` closest to a passage vector of `from_language`, by
        centred cosine. The search vector is moved into `to_language`'s cone (its mean
        added, the other's removed), so an approximate index finds that language's rows."""
        centred = vector - self.space.passage_mean(from_language)
        target = self.space.passage_mean(to_language)
        probe = centred + target
        view = self.index.dense_candidates(probe / max(float(np.linalg.norm(probe)), 1e-6), sources, public_only,
                                           [], self.depth)
        positions = np.flatnonzero(_allowed(view, sources, public_only) & (view.languages == to_language))
        if not len(positions):
            return None
        moved = view.matrix[positions] - target
        scores = (moved @ centred) / (np.linalg.norm(moved, axis=1) * max(float(np.linalg.norm(centred)), 1e-6))
        top = int(np.argmax(scores))
        return int(view.rowids[positions[top]]), float(scores[top])

    def _vector(self, query: str) -> np.ndarray:
        """The question's embedding; the last few are kept (a turn embeds one question twice)."""
        cached = self._vectors.get(query)
        if cached is None:
            cached = self.embedder.query(query)
            self._vectors[query] = cached
            while len(self._vectors) > 32:
                self._vectors.pop(next(iter(self._vectors)))
        return cached

    def _scores(self, vector: np.ndarray, language: str, sources: Sequence[str] | None, public_only: bool,
                wanted: list[int]) -> tuple[dict[int, float], dict[int, float], dict[int, float],
                                            list[tuple[int, float]]]:
        """Raw, language-centred and language-adjusted cosines (knowledge/crosslingual.py) of
        the dense top `depth` and of the `wanted` rowids (BM25's candidates), and the dense
        ranking (adjusted, best first)."""
        view = self.index.dense_candidates(vector, sources, public_only, wanted, self.depth)
        if not len(view.rowids):
            return {}, {}, {}, []
        mask = _allowed(view, sources, public_only)
        positions = np.flatnonzero(mask)
        if not len(positions):
            return {}, {}, {}, []
        whole = len(positions) == len(mask)
        matrix = view.matrix if whole else view.matrix[positions]
        languages = view.languages if whole else view.languages[positions]
        norms = self._row_norms(view)
        raw = matrix @ vector
        centred = self.space.centred(matrix, languages, norms if whole else norms[positions], raw, vector, language)
        ranking = self._ranking(raw, centred, languages, language)
        top = np.argsort(-ranking)[: self.depth]
        allowed = view.rowids[positions]  # sorted, like the view
        # BM25's candidates among the allowed rows (a chunk written after the view was built has none yet)
        at = np.minimum(np.searchsorted(allowed, wanted), len(allowed) - 1) if wanted else np.zeros(0, np.int64)
        at = at[allowed[at] == np.asarray(wanted, dtype=np.int64)] if wanted else at
        picks = np.unique(np.concatenate([top, at]).astype(np.int64))
        rowids = allowed[picks].tolist()
        dense = [(int(allowed[i]), float(ranking[i])) for i in top]
        return (dict(zip(rowids, raw[picks].tolist())), dict(zip(rowids, centred[picks].tolist())),
                dict(zip(rowids, ranking[picks].tolist())), dense)

    def _ranking(self, raw: np.ndarray, centred: np.ndarray, languages: np.ndarray, language: str) -> np.ndarray:
        """The dense ranking score of each row: centred plus language-adjusted raw cosines when
        the rows are in several languages; the raw cosine alone when they share one, since
        centring is there to compare languages, and within one language it loses (dense R@1
        0.595 against 0.655 on cnil_fr, 0.894 against 0.915 on stackfaq)."""
        adjusted = self.space.adjusted(raw, languages, language)
        if not len(languages) or (languages == languages[0]).all():
            return adjusted
        return centred + self.mix * adjusted

    def _row_norms(self, view: DenseView) -> np.ndarray:
        if view.partial:  # a query's candidates: a few hundred rows, computed each time
            return self.space.row_norms(view.matrix, view.languages)
        if self._norms is None or self._norms[0] != view.generation:
            self._norms = (view.generation, self.space.row_norms(view.matrix, view.languages))
        return self._norms[1]


def _allowed(view: DenseView, sources: Sequence[str] | None, public_only: bool) -> np.ndarray:
    """Which rows of `view` a search may return: the profile's sources, public ones if asked."""
    mask = np.ones(len(view.rowids), dtype=bool)
    if sources is not None:
        mask &= np.isin(view.sources, list(sources))
    if public_only:
        mask &= view.public
    return mask


def _first_in(language: str, hits: Sequence[Hit], good: Callable[[Hit], bool]) -> list[Hit] | None:
    """`hits` with the first runner-up in `language` that is `good` moved to the front, or None."""
    for i, hit in enumerate(hits[1:], 1):
        if hit.stored.language == language and good(hit):
            return [hit, *hits[:i], *hits[i + 1:]]
    return None


def _fuse(lex: list[tuple[int, float]], dense: list[tuple[int, float]], cosines: dict[int, float],
          lexical_weight: float) -> dict[int, float]:
    """Fused scores of every candidate of either ranking (see the module docstring)."""
    bm25 = _scaled_bm25(lex)
    if not dense:
        return bm25
    high, low = dense[0][1], dense[-1][1]
    fused = {}
    for rowid in bm25.keys() | {r for r, _ in dense}:
        # Below the dense top's floor a cosine says "not close", like a missing BM25: 0, not negative.
        closeness = max(cosines.get(rowid, low) - low, 0.0) / (high - low or 1.0)
        fused[rowid] = lexical_weight * bm25.get(rowid, 0.0) + (1.0 - lexical_weight) * closeness
    return fused


def _scaled_bm25(lex: list[tuple[int, float]]) -> dict[int, float]:
    best = lex[0][1] if lex else 0.0
    return {rowid: value / best if best > 0 else 0.0 for rowid, value in lex}


def _question_terms(query: str, language: str, vocabulary: dict[str, int]) -> tuple[list[str], synonyms.Expansion]:
    """The question's index terms (misspellings corrected) and the support thesaurus's groups
    they match: a customer's words for the help center's (knowledge/synonyms.py)."""
    terms = lexical.terms(query, language, synonyms.known(vocabulary, language))
    return terms, synonyms.expansion(terms, language)


def _named_section(lex: list[tuple[int, float]], ranked: list[int], stored: dict[int, StoredChunk],
                   query_terms: list[str], same: synonyms.Expansion, language: str,
                   terms_of: Callable[[int], set[str]], head_of: Callable[[int], set[str]]) -> int:
    """The position among the runners-up of a help-center section to quote instead of the Q&A
    entry ranked first, or 0 to keep the order.

    An entry's question is short and generic, and e5 puts it close to any question of the same
    form: "Quel est le délai de retour ?" found "Quels sont vos délais de livraison ?" first
    (the returns section second, 0.68 against 0.87), "Acceptez-vous les cartes American
    Express ?" "Proposez-vous un emballage cadeau ?" (0.81; the payment methods section 4th).
    So when the entry lacks some of the question's words, a section in the question's language
    among the next `SECTION_RUNNERS_UP`, or among BM25's first `HEADED_BM25`, that holds them all
    and names one in its title or heading ("Délai et conditions de retour", "Moyens de paiement
    acceptés") is what the question asks about. BM25's too: "Combien de temps ai-je pour
    renvoyer un article ?" found the English delivery-times entry first, and the returns
    section (BM25's first) 17th, its cosine below the dense top 50's. An entry in another
    language lacks every word (none can be shared). Only a section under a heading, never another
    entry: on stackfaq and cnil_fr (entries only) a runner-up entry naming the missing word
    was a paraphrase's wrong page as often as not (hybrid R@1 0.918 -> 0.902 and 0.655 ->
    0.643 when entries could take the lead; docs/benchmarks.md)."""
    top = stored.get(ranked[0]) if ranked else None
    if top is None or not is_entry(top):
        return 0
    missing = set(query_terms) - same.found(query_terms, terms_of(ranked[0]))
    if not missing:
        return 0
    runners_up = ranked[1:SECTION_RUNNERS_UP + 1]
    runners_up += [r for r, _ in lex[:HEADED_BM25] if r in ranked and r not in runners_up and r != ranked[0]]
    named = []
    for rowid in runners_up:
        other = stored.get(rowid)
        if other is None or other.language != language or not other.chunk.heading:
            continue
        if same.found(missing, head_of(rowid)) and same.found(missing, terms_of(rowid)) == missing:
            named.append(rowid)
    # a page's title names every section of it: the one whose own heading names the word first
    # ("délai" with "Délais et frais de livraison": "Délais de livraison par pays", not the costs)
    by_heading = [r for r in named if same.found(missing, set(lexical.terms(stored[r].chunk.heading, language)))]
    return ranked.index((by_heading or named)[0]) if named else 0


def _headed_section(lex: list[tuple[int, float]], ranked: list[int], stored: dict[int, StoredChunk],
                    query_terms: list[str], same: synonyms.Expansion, language: str,
                    head_of: Callable[[int], set[str]]) -> int:
    """The position in `ranked` of a section whose title and heading name every term of the
    question, among BM25's first `HEADED_BM25` passages, when the title and heading (or the
    question, for a Q&A entry) of the passage ranked first don't; 0 to keep the order.

    A section covers several things (the tracking section also says where a parcel waits when
    nobody is home), so its vector can sit far from a question on one of them: "Comment suivre
    mon colis ?" found the lost-parcel entry first and "Suivre votre colis" (BM25's first, 8.97
    against 4.09) was not among the first 24 passages, the dense side carrying 0.75 of the
    fused score. A heading that says all the question says is what a reader of the help
    center would open. "How do I track my parcel?" found the lost-parcel entry, which says
    "tracking" in its answer but asks about something else."""
    wanted = set(query_terms)

    def names_all(rowid: int) -> bool:
        return same.found(wanted, head_of(rowid)) == wanted
    if not ranked or not wanted or ranked[0] not in stored or names_all(ranked[0]):
        return 0
    for rowid, _ in lex[:HEADED_BM25]:
        other = stored.get(rowid)
        if rowid not in ranked or other is None or other.language != language or not other.chunk.heading:
            continue
        if names_all(rowid):
            return ranked.index(rowid)
    return 0


def _head_terms(stored: StoredChunk) -> set[str]:
    """The index terms of a passage's title and heading path: what it says it is about."""
    return set(lexical.terms(f"{stored.title} {stored.chunk.heading}", stored.language or "en"))


def _terms_of(stored: StoredChunk) -> set[str]:
    """The index terms of a passage with its title and heading path."""
    return set(lexical.terms(f"{stored.title} {stored.chunk.heading} {stored.chunk.text}", stored.language or "en"))


def _coverage(wanted: set[str], have: set[str], same: synonyms.Expansion) -> float:
    """The share of the question's terms `wanted` among a passage's terms `have`, each found
    as itself or as another word of its group (knowledge/synonyms.py)."""
    return len(same.found(wanted, have)) / len(wanted) if wanted else 0.0


def documents_in_order(hits: Sequence[Hit]) -> list[str]:
    """The distinct document ids of `hits`, in rank order (for document-level metrics)."""
    return list(dict.fromkeys(h.stored.chunk.document_id for h in hits))
