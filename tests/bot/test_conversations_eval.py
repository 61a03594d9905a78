"""Conversation evaluation (bot/evaluation.py): how a turn is judged, the cases file's
checks, a replay through the real engine, and `switchboard eval conversations`."""
from __future__ import annotations

import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from adapters.cli import main
from bot.answering import ExtractiveAnswerer
from bot.engine import Engine
from bot.evaluation import CLASSES, check_cases, judge, run_conversations, turn_text
from bot.runtime import SAMPLE_DIR
from bot.types import Action, Citation, Reply
from knowledge.evaluation import EvalDataError, read_jsonl

CHECKOUT = Path(__file__).resolve().parents[2]
CASES = CHECKOUT / "tests" / "data" / "conversations.jsonl"
RETURNS = Citation(title="Retours", url="u", snippet="", source="helpcenter", document_id="fr/retours")
FAQ_FR = Citation(title="Livraison", url="u", snippet="", source="faq", document_id="qa_form#delivery_times@fr")
HUMAN = Action(id="handoff", label="Parler à un conseiller", kind="handoff", value="missing_knowledge")


def reply(answer: str = "", *, answered: bool = True, citations=(), actions=(), language: str = "fr") -> Reply:
    return Reply(id="r", conversation="c", answer=answer, language=language, citations=tuple(citations),
                 actions=tuple(actions), answered=answered)


def case(*turns: dict, cls: str = "in_scope", split: str = "dev", id: str = "c1") -> dict:
    return {"id": id, "class": cls, "language": "fr", "split": split, "turns": list(turns)}


# -- judging -----------------------------------------------------------------------------------
def test_an_answer_must_cite_a_relevant_page_contain_the_fact_and_speak_the_language():
    expect = {"answered": True, "relevant": ["helpcenter/fr/retours"], "fact": "30 jours", "language": "fr"}
    assert judge(expect, reply("Vous avez 30\u202fjours.", citations=[RETURNS])) == ""
    assert judge(expect, reply("Vous avez 30 jours.", citations=[FAQ_FR])) == "no relevant citation"
    assert judge(expect, reply("Sous 14 jours.", citations=[RETURNS])) == "answer lacks '30 jours'"
    assert judge(expect, reply("You have 30 jours.", citations=[RETURNS], language="en")) == "language en, not fr"
    assert judge(expect, reply("Désolé.", answered=False, actions=[HUMAN])) == "declined"


def test_a_qa_form_answer_matches_without_its_language_suffix():
    expect = {"answered": True, "relevant": ["qa_form#delivery_times"]}
    assert judge(expect, reply("…", citations=[FAQ_FR])) == ""


def test_a_decline_must_not_answer_and_must_offer_a_human():
    expect = {"answered": False}
    assert judge(expect, reply("Désolé.", answered=False, actions=[HUMAN])) == ""
    assert judge(expect, reply("Désolé.", answered=False)) == "not declined with a human offered"
    assert judge(expect, reply("Vous avez 30 jours.", citations=[RETURNS])) == "not declined with a human offered"


def test_small_talk_is_short_quotes_no_page_and_offers_no_human():
    expect = {"smalltalk": True}
    assert judge(expect, reply("Bonjour ! Comment puis-je vous aider ?")) == ""
    assert judge(expect, reply("Bonjour !", answered=False)) == ""
    assert judge(expect, reply("**Retours** [1] Vous avez 30 jours.", citations=[RETURNS])) == "cites a page"
    assert judge(expect, reply("Désolé.", answered=False, actions=[HUMAN])) == "declined with a human offered"
    assert judge(expect, reply("x" * 401)) == "not a short reply"


# -- the cases file ------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, message", [
    (case(cls="chitchat"), "unknown class 'chitchat'"),
    (case(split="test"), "unknown split 'test'"),
    (case(), "'turns' must be a non-empty list"),
    (case({"user": "bonjour"}), "needs 'user'"),
    (case({"user": "bonjour", "expect": {"fact": "x"}}), "needs 'answered'"),
    (case({"user_repeat": "bla ", "times": 100_000, "expect": {"answered": False}}), "at most 100000"),
])
def test_bad_cases_are_refused_with_what_is_wrong(bad, message):
    with pytest.raises(EvalDataError, match=message):
        check_cases([bad], "f.jsonl")


def test_filler_is_generated_from_a_short_spec():
    assert turn_text({"user_repeat": "blah ", "times": 3999}) == "blah " * 3999


def sample_ids() -> set[str]:
    ids = {f"helpcenter/{p.relative_to(SAMPLE_DIR / 'helpcenter').with_suffix('')}"
           for p in (SAMPLE_DIR / "helpcenter").rglob("*.md") if "intern" not in p.stem}
    ids |= {f"qa_form#{a['key']}" for a in yaml.safe_load((SAMPLE_DIR / "qa_form.yaml").read_text())["answers"]}
    with open(SAMPLE_DIR / "offers.csv", encoding="utf-8") as catalog:
        return ids | {f"offers#{row['id']}" for row in csv.DictReader(catalog)}


def test_the_development_set_is_well_formed():
    cases = check_cases(read_jsonl(CASES, ("id", "class", "language", "split", "turns")), str(CASES))
    assert len(cases) >= 120 and len({c["id"] for c in cases}) == len(cases)
    for name in CLASSES:
        mine = [c for c in cases if c["class"] == name]
        assert len(mine) >= 15 and {c["language"] for c in mine} == {"en", "fr", "zh"}, name
        assert 0.25 <= sum(c["split"] == "holdout" for c in mine) / len(mine) <= 0.4, name
    known = sample_ids()
    relevant = Counter(r for c in cases for t in c["turns"] for r in t["expect"].get("relevant", ()))
    assert set(relevant) <= known, set(relevant) - known  # and never an internal page


# -- through the engine --------------------------------------------------------------------------
def test_replaying_cases_judges_every_turn_and_reports_failures(retriever, profiles, events, memory):
    engine = Engine(memory=memory, retriever=retriever, answerer=ExtractiveAnswerer(), profiles=profiles,
                    events=events)
    returns = {"user": "Combien de temps ai-je pour retourner un article ?",
               "expect": {"answered": True, "relevant": ["helpcenter/fr/retours"], "language": "fr"}}
    wrong = {"user": "Quel est le délai pour retourner un article ?", "expect": {"answered": False}}
    cases = [case(returns, id="good"), case(returns, wrong, cls="uncovered", id="wrong"),
             case(returns, cls="follow_up", split="holdout", id="held")]
    try:
        result = asyncio.run(run_conversations(engine, cases, "dev"))
    finally:
        engine.close()
    assert result["cases"] == 2 and result["turns"] == 3 and set(result["classes"]) == {"in_scope", "uncovered"}
    assert result["classes"]["in_scope"] == {"n": 1, "rate": 1.0, "by_kind": {"answer": 1.0}}
    assert result["classes"]["uncovered"]["by_kind"] == {"answer": 1.0, "decline": 0.0}
    [failure] = result["failures"]
    assert (failure["case"], failure["turn"], failure["answered"]) == ("wrong", 2, True)
    assert failure["citation"] == "helpcenter/fr/retours" and failure["expected"] == {"answered": False}
    assert failure["problem"] == "not declined with a human offered" and len(failure["answer"]) <= 120


# -- the command -----------------------------------------------------------------------------------
@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    ('{"id": "a", "class": "in_scope", "turns": []}\n{not json\n', ":2: not JSON"),
    ('{"id": "a", "turns": []}\n', ":1: missing class"),
    ('{"id": "a", "class": "weather", "turns": [{"user": "hi", "expect": {"smalltalk": true}}]}\n',
     "unknown class 'weather'"),
])
def test_bad_case_files_print_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "cases.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["eval", "conversations", "--cases", str(path)]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


def test_the_command_prints_a_table_and_one_json_line(tmp_path, sample_index_path):
    shutil.copy(sample_index_path, tmp_path / "index.sqlite3")
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps(case({"user": "Quel est le délai pour retourner un article ?",
                                     "expect": {"answered": False}}, cls="uncovered")) + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT), "SWITCHBOARD_HOME": str(tmp_path),
           "SWITCHBOARD_INDEX": str(tmp_path / "index.sqlite3")}
    result = subprocess.run([sys.executable, "-m", "adapters.cli", "eval", "conversations", "--cases", str(path),
                             "--split", "dev"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["class", "n", "rate"] and lines[1].split()[:3] == ["uncovered", "1", "0.000"]
    assert any(line.startswith("FAIL c1 turn 1: not declined") for line in lines)
    figures = json.loads(lines[-1])
    assert figures["classes"]["uncovered"]["rate"] == 0.0 and figures["failures_n"] == 1
