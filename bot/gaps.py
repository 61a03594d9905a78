"""Knowledge gaps: the questions the bot declined or answered with a 👎, grouped by meaning,
most frequent first, each with a draft answer taken from what an agent told one of
those customers (the console's Knowledge gaps page, docs/admin.md#knowledge-gaps).

Questions come from the turn events (`declined`, and `answered` whose reply got a 👎 in
`Feedback`), as stored: personal data masked. They are grouped by their e5 query vectors
(the runtime's embedder), oldest first: a question joins the group whose centre is the
most similar to it if that is at least `THRESHOLD`, else starts one. A question stays open until a later question of
the same meaning is answered (and not 👎): so once an admin adds the missing answer to
the Q&A form, the gap's count goes down as the next questions get answered, and a gap
with nothing open left disappears. The draft comes from the conversations' memory: the
longest reply an agent sent after the question, when a person answered it.
"""
from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from sqlmodel import Session, select

from bot.store import Escalation, Event, Feedback
from bot.strings import STRINGS

# cosine of multilingual-e5-small query vectors, measured on paraphrases ("Can I pay with
# PayPal?" / "Do you accept PayPal?", 0.94; across languages 0.93) against different
# questions of one shop (at most 0.86)
THRESHOLD = 0.88
LIMIT = 300  # unanswered questions read at most (the newest); each new one costs an embedding (~20-40 ms)
ANSWERED = 300  # answered questions read at most (the newest), to close the gaps
VECTORS = 5000  # question vectors kept between two looks
MAX_DRAFT = 2000  # characters of a drafted answer


@dataclass(frozen=True)
class Asked:
    """One customer question: `why` is "declined", "disliked" (answered, then 👎) or "answered"."""

    conversation: str
    question: str
    at: float
    why: str
    profile: str = ""
    language: str = ""


@dataclass(frozen=True)
class Gap:
    """Questions of one meaning the bot could not answer: `asked` are still open (newest
    first), `answered` counts later questions of this meaning the bot answered."""

    label: str  # the question nearest the group's centre
    asked: tuple[Asked, ...]
    answered: int = 0
    draft: str = ""  # an agent's reply to one of them, or ""

    @property
    def count(self) -> int:
        return len(self.asked)


def _asked(row: Any, why: str) -> Asked:
    detail = json.loads(row.detail or "{}")
    return Asked(row.conversation, str(detail.get("question") or "").strip(), row.at, why,
                 str(detail.get("profile") or ""), str(detail.get("language") or ""))


def unanswered(db: Any, start: float, end: float, limit: int = LIMIT) -> list[Asked]:
    """The period's declined questions and answers given a 👎, newest first (blocking)."""
    disliked = select(Feedback.reply_id).where(Feedback.value == "down")
    with Session(db) as session:
        rows = session.exec(select(Event).where(
            Event.at >= start, Event.at < end,
            (Event.kind == "declined") | ((Event.kind == "answered") & Event.reply_id.in_(disliked)))
            .order_by(Event.at.desc()).limit(limit)).all()
    return [a for a in (_asked(r, "declined" if r.kind == "declined" else "disliked") for r in rows) if a.question]


def answered(db: Any, start: float, end: float, limit: int = ANSWERED) -> list[Asked]:
    """Questions answered in [start, end) without a 👎, newest first (blocking)."""
    disliked = select(Feedback.reply_id).where(Feedback.value == "down")
    with Session(db) as session:
        rows = session.exec(select(Event).where(Event.at >= start, Event.at < end, Event.kind == "answered",
                                                Event.reply_id.not_in(disliked))
                            .order_by(Event.at.desc()).limit(limit)).all()
    return [a for a in (_asked(r, "answered") for r in rows) if a.question]


def agents(db: Any, conversations: Sequence[str]) -> dict[str, list[tuple[str, float]]]:
    """The agents who took each of `conversations`: (display name, claimed at) (blocking)."""
    found: dict[str, list[tuple[str, float]]] = {}
    with Session(db) as session:
        for row in session.exec(select(Escalation).where(Escalation.conversation.in_(list(conversations)),
                                                         Escalation.claimed_at > 0)):
            found.setdefault(row.conversation, []).append((row.agent_name or row.agent, row.claimed_at))
    return found


def agent_words(text: str, agent: str) -> str:
    """What `agent` said in a remembered turn (the "agent_says" line of any language), or ""."""
    for template in STRINGS["agent_says"].values():
        prefix = template.split("{text}")[0].format(agent=agent)
        if agent and text.startswith(prefix):
            return text[len(prefix):].strip()
    return ""


def group(open_: Sequence[Asked], closing: Sequence[Asked], vector: Callable[[str], np.ndarray],
          threshold: float = THRESHOLD) -> list[tuple[str, list[Asked], int]]:
    """(label, open questions newest first, answered since) per meaning, most open first."""
    groups: list[dict[str, Any]] = []
    for item in sorted(open_, key=lambda a: a.at):
        v = vector(item.question)
        best = max(groups, key=lambda g: float(g["centre"] @ v), default=None)
        if best is None or float(best["centre"] @ v) < threshold:
            best = {"members": [], "vectors": []}
            groups.append(best)
        best["members"].append(item)
        best["vectors"].append(v)
        centre = np.mean(best["vectors"], axis=0)
        best["centre"] = centre / (float(np.linalg.norm(centre)) or 1.0)
    found = []
    for g in groups:
        centre = g["centre"]
        near = [a for a in closing if float(vector(a.question) @ centre) >= threshold]
        still = [m for m in g["members"] if not any(a.at > m.at for a in near)]
        label = g["members"][int(np.argmax([float(v @ centre) for v in g["vectors"]]))].question
        if still:
            found.append((label, sorted(still, key=lambda a: -a.at), sum(a.at > g["members"][0].at for a in near)))
    return sorted(found, key=lambda f: (-len(f[1]), -f[1][0].at))


class Gaps:
    """Finds the gaps of a period over the event database, the memory (agents' replies)
    and the embedder; question vectors are kept between two looks."""

    def __init__(self, db: Any, memory: Any, embedder: Any, threshold: float = THRESHOLD):
        self.db, self.memory, self.embedder, self.threshold = db, memory, embedder, threshold
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    def vector(self, text: str) -> np.ndarray:
        if text in self._vectors:
            self._vectors.move_to_end(text)
            return self._vectors[text]
        found = self._vectors[text] = np.asarray(self.embedder.query(text), dtype=np.float32)
        while len(self._vectors) > VECTORS:
            self._vectors.popitem(last=False)
        return found

    def _grouped(self, start: float, end: float) -> list[tuple[str, list[Asked], int]]:
        open_ = unanswered(self.db, start, end)
        if not open_:
            return []
        closing = answered(self.db, min(a.at for a in open_), end)
        return group(open_, closing, self.vector, self.threshold)

    async def find(self, start: float, end: float) -> list[Gap]:
        """The gaps of questions asked in [start, end), most open questions first."""
        grouped = await asyncio.to_thread(self._grouped, start, end)
        taken = await asyncio.to_thread(agents, self.db, sorted({a.conversation for _, g, _ in grouped for a in g}))
        return [Gap(label, tuple(asked), closed, await self._draft(asked, taken)) for label, asked, closed in grouped]

    async def _draft(self, asked: Sequence[Asked], taken: dict[str, list[tuple[str, float]]]) -> str:
        """The longest reply an agent sent one of these customers after their question."""
        replies: list[str] = []
        for item in asked:
            if item.conversation not in taken:
                continue
            turns = (await self.memory.load(item.conversation)).turns
            replies += [words for name, _ in taken[item.conversation] for turn in turns
                        if turn.role == "assistant" and turn.at >= item.at
                        and (words := agent_words(turn.text, name))]
        return max(replies, key=len, default="")[:MAX_DRAFT]
