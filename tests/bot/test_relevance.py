"""The relevance decision on the sample knowledge, through the real engine: what is answered,
what is declined, in every turn and language (issue 14). bench/conversations.py measures the
rates on the whole development set; these are the classes, one case or two each."""
from __future__ import annotations

import pytest

from bot.answering import ExtractiveAnswerer
from bot.engine import Engine
from bot.moderation import LocalModerator
from bot.types import Message, User


@pytest.fixture
def engine(memory, retriever, profiles, events):
    return Engine(memory=memory, retriever=retriever, answerer=ExtractiveAnswerer(), profiles=profiles,
                  events=events, moderator=LocalModerator())


async def turn(engine: Engine, text: str, conversation: str = "web:r1"):
    return await engine.handle(Message(conversation=conversation, text=text, user=User(id="u"), channel="web",
                                       private=False))


def declined(reply) -> bool:
    return not reply.answered and any(a.kind == "handoff" for a in reply.actions)


def cites(reply, fragment: str) -> bool:
    return any(fragment in f"{c.source}/{c.document_id}" for c in reply.citations)


@pytest.mark.parametrize("text", ["hello", "Thanks!", "is anyone there?", "Merci beaucoup !", "你好", "在吗？"])
async def test_small_talk_gets_a_short_reply_without_a_page(engine, text):
    await turn(engine, "How long do I have to return an item?")
    reply = await turn(engine, text)
    assert reply.answered and not reply.citations and not reply.actions and len(reply.answer) < 200
    assert reply.plain and not reply.rateable  # no 👍/👎, no Talk to a human under a hello


@pytest.mark.parametrize("text", ["what's the weather tomorrow?", "who won the match?", "et la recette des crêpes ?",
                                  "昨晚的足球比赛谁赢了？", "is it raining?"])
async def test_an_off_topic_turn_after_an_answer_is_declined(engine, text):
    first = await turn(engine, "How long do I have to return an item?")
    assert first.answered and cites(first, "returns")
    assert declined(await turn(engine, text))


@pytest.mark.parametrize("first, follow, where, fact", [
    ("What are your delivery times?", "and for Belgium?", "delivery", "Belgium"),
    ("Quels sont vos délais de livraison ?", "et pour la Suisse ?", "livraison", "Suisse"),
    ("How long does delivery to Germany take?", "what about returns?", "returns", "30 days"),
])
async def test_a_follow_up_is_answered_from_the_conversation(engine, first, follow, where, fact):
    await turn(engine, first)
    reply = await turn(engine, follow)
    assert reply.answered and fact in reply.answer and (cites(reply, where) or cites(reply, "delivery_times"))


@pytest.mark.parametrize("question, page", [("灯的保修期是几年？", "warranty"), ("有学生折扣吗？", "discounts"),
                                            ("怎么删除账户？", "account")])
async def test_a_question_answered_only_in_another_language_cites_that_page_and_says_so(engine, question, page):
    reply = await turn(engine, question)
    assert reply.answered and reply.language == "zh" and cites(reply, page)
    assert "帮助中心" in reply.answer.split("\n")[0]  # "this answer comes from our … help center", in Chinese


async def test_a_misspelled_question_is_answered_like_the_right_one(engine):
    reply = await turn(engine, "how lnog do i have to retrun an item")
    assert reply.answered and cites(reply, "returns")


@pytest.mark.parametrize("text", ["blah " * 3000, "asdkjh qwe lkjsdf", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"])
async def test_noise_is_declined(engine, text):
    assert declined(await turn(engine, text))


@pytest.mark.parametrize("text", ["Do you offer lamp repair workshops?", "What is your CEO's name?",
                                  "Do you have a loyalty points program?"])
async def test_what_the_knowledge_does_not_cover_is_declined(engine, text):
    assert declined(await turn(engine, text))


async def test_a_message_moderation_flags_gets_the_safe_message_and_a_person(engine, events):
    reply = await turn(engine, "I want to kill myself tonight")
    assert not reply.answered and not reply.citations and [a.kind for a in reply.actions] == ["handoff"]
    assert "emergency" in reply.answer
    [event] = events.events("web:r1", "moderated")
    assert '"self_harm"' in event.detail and '"input"' in event.detail


@pytest.mark.parametrize("text, language", [("Salut !", "fr"), ("非常感谢！", "zh"), ("Hola", "es")])
async def test_a_greeting_alone_is_answered_in_its_own_language(engine, text, language):
    reply = await turn(engine, text, conversation=f"web:greet-{language}")
    assert reply.answered and not reply.citations and reply.language == language


@pytest.mark.parametrize("first, text, language", [("退货要多久？", "hello!", "en"),
                                                   ("How long do I have to return an item?", "merci beaucoup !", "fr"),
                                                   ("退货要多久？", "ok", "zh")])
async def test_small_talk_is_answered_in_its_own_language_after_a_question_in_another(engine, first, text, language):
    """A visitor who asked in Chinese and then writes "hello!" is greeted in English; a word of
    no one language ("ok") keeps the conversation's."""
    await turn(engine, first, conversation="web:switch")
    reply = await turn(engine, text, conversation="web:switch")
    assert reply.answered and not reply.citations and reply.language == language


async def test_a_french_question_is_quoted_from_the_french_page_not_its_english_translation(engine):
    reply = await turn(engine, "Quels moyens de paiement acceptez-vous ?")
    assert reply.answered and cites(reply, "fr/paiement") and not cites(reply, "en/payment")
    assert "PayPal" in reply.answer and "anglais" not in reply.answer.split("\n")[0]


@pytest.mark.parametrize("text", ["Puis-je louer une lampe pour un mariage ?", "可以按我的尺寸定制灯罩吗？",
                                  "My table lamp is sparking when I switch it on, what should I do?"])
async def test_a_product_sheet_never_answers_a_question_that_does_not_name_the_product(engine, text):
    reply = await turn(engine, text)
    assert not cites(reply, "offers#")


async def test_a_pronoun_follow_up_about_a_product_stays_on_that_product(engine):
    await turn(engine, "Tell me about the Nomade Rechargeable Lamp")
    reply = await turn(engine, "how much does it cost?")
    assert reply.answered and cites(reply, "offers#ML1005") and "69.90" in reply.answer


@pytest.mark.parametrize("text", ["and how much is it?", "how much is it?"])
async def test_a_follow_up_made_only_of_question_words_stays_on_the_product(engine, text):
    """"how much is it?" has no word the knowledge knows ("much" is nowhere in it): it
    points back at the product all the same, and is not judged alone (a decline)."""
    await turn(engine, "Is the Croix-Rousse Wall Light in stock?")
    reply = await turn(engine, text)
    assert reply.answered and cites(reply, "offers#ML1004") and "89.90" in reply.answer


@pytest.mark.parametrize("text", ["how much is a train ticket to Tokyo?", "how long is the Nile river?"])
async def test_question_words_with_a_topic_of_their_own_are_still_judged_alone(engine, text):
    await turn(engine, "Is the Croix-Rousse Wall Light in stock?")
    assert declined(await turn(engine, text))


@pytest.mark.parametrize("text", ["asdfghjkl qwertyuiop zxcvbnm", "qsdfghjklm azertyuiop"])
async def test_keys_run_along_a_keyboard_row_are_declined_as_noise(engine, text):
    assert declined(await turn(engine, text))


async def test_a_page_in_the_users_language_ranked_nearly_as_high_is_quoted_before_another_languages(engine):
    # the English Q&A entry on lost parcels ranks first; the Chinese delivery page's section says the same
    reply = await turn(engine, "包裹丢了怎么办？")
    assert reply.answered and cites(reply, "zh/delivery") and "调查" in reply.answer
    assert "帮助中心" not in reply.answer.split("\n")[0]  # no "this comes from our … help center" line


@pytest.mark.parametrize("question", ["Je voudrais savoir combien coûte la livraison en Belgique",
                                      "Quels sont les délais de livraison ?"])
async def test_a_short_question_in_another_language_after_an_answer_finds_its_own_page(engine, question):
    """"保修期多久？" (how long is the warranty?) after a question in French on delivery: the
    warranty page (in English: no word in common to count), not the delivery FAQ again."""
    first = await turn(engine, question, "web:r9")
    assert first.answered and (cites(first, "delivery") or cites(first, "livraison"))
    reply = await turn(engine, "保修期多久？", "web:r9")
    assert reply.answered and reply.language == "zh" and cites(reply, "warranty") and not cites(reply, "delivery")


async def test_a_whole_chinese_question_after_an_answer_is_judged_alone(engine):
    """"可以分期付款吗？" (can I pay in instalments?) after a returns question: the refunds
    section mentions instalments, but the question is a question of its own (…吗), so it is
    not joined to the returns question; alone it finds the English instalments section."""
    first = await turn(engine, "退货期限是多久？", "web:r10")
    assert first.answered and cites(first, "zh/returns")
    reply = await turn(engine, "可以分期付款吗？", "web:r10")
    assert not cites(reply, "returns")


@pytest.mark.parametrize("text, elliptic", [
    ("那比利时呢？", True), ("比利时呢？", True), ("瑞士？", True), ("寄到瑞士", True), ("多少钱？", True),
    ("可以分期付款吗？", False), ("退货后退款多久能到账？", False), ("Belgium?", True), ("in Switzerland", True),
    ("Can I pay in three installments with a card?", False),
])
def test_a_chinese_message_is_elliptic_by_its_words_not_its_spaces(text, elliptic):
    from bot import condense
    assert condense.is_short(text) is elliptic


@pytest.mark.parametrize("conversation, fact", [
    (["Combien coûte la livraison en Allemagne ?"], "| **Allemagne** | **9,90 €** |"),
    (["How much is shipping to Germany?"], "| **Germany** | **€9.90** |"),
    (["寄到瑞士要多久？"], "| **瑞士** | **DHL** | **5至8个工作日** |"),
    (["Combien coûte la livraison ?", "et en Italie ?"], "| **Espagne, Italie** | **11,90 €** |"),
    (["寄到德国要多久？", "那比利时呢？"], "| **比利时、卢森堡** | **Colissimo** | **3至5个工作日** |"),
    (["寄到比利时的运费是多少？"], "| **比利时、卢森堡** | **8.90 欧元** |"),  # not the return shipping table
])
async def test_a_question_naming_a_row_of_a_table_is_answered_from_that_table(engine, conversation, fact):
    """The FAQ entry on delivery methods mentions Germany among the countries served and
    ranks first; the table of shipping costs has Germany's row (knowledge/tables.py), shown
    in bold. Of two tables with a row per country, the one holding what was asked (a
    price, a time)."""
    for text in conversation:
        reply = await turn(engine, text, f"web:t{len(conversation)}{conversation[0][:6]}")
    assert reply.answered and fact in reply.answer, reply.answer
    assert len(reply.citations) == 1  # the row is the answer: no second passage that only mentions it


async def test_a_chinese_what_about_follow_up_is_searched_on_its_topic(engine):
    """"那保修呢？" (and the warranty?) after a delivery question: the frame 那…呢 drowned the
    two characters of its topic (0.08 confident in the warranty page, 0.66 for 保修 alone),
    and 那 read as a pronoun pointing back at delivery."""
    first = await turn(engine, "寄到德国要多久？", "web:w1")
    assert first.answered and cites(first, "delivery")
    reply = await turn(engine, "那保修呢？", "web:w1")
    assert reply.answered and reply.language == "zh" and (cites(reply, "warrant") or cites(reply, "garantie")) \
        and not cites(reply, "delivery")


@pytest.mark.parametrize("text, topic", [("那保修呢？", "保修"), ("还有发票呢", "发票"), ("保修呢？", "保修"),
                                         ("那个多少钱呢？", "那个多少钱"), ("and the warranty?", "and the warranty?")])
def test_the_topic_of_a_chinese_what_about(text, topic):
    from bot import condense
    assert condense.topic(text) == topic


@pytest.mark.parametrize("question, product", [("La suspension Rivage est-elle en rotin ?", "ML1003"),
                                               ("Saône花瓶多高？", "ML1013")])
async def test_a_product_named_in_another_language_is_answered_from_its_sheet(engine, question, product):
    """The catalog is in English: "La suspension Rivage…" scored 0.28 against the product's
    name (the threshold is 0.33) and was declined, though it writes the name."""
    reply = await turn(engine, question, f"web:p{product}")
    assert reply.answered and cites(reply, product)


async def test_with_no_page_in_the_users_language_the_profiles_language_comes_before_a_third(engine):
    """"怎么修改邮箱？" (how do I change my email?) finds the French account page first; the
    help center has no Chinese one, and the profile's language is English: its English
    translation is quoted (a Chinese customer is likelier to read English than French)."""
    reply = await turn(engine, "怎么修改邮箱？", "web:fb1")
    assert reply.answered and reply.language == "zh" and cites(reply, "en/account") and not cites(reply, "compte")


async def test_a_follow_up_naming_another_row_shows_that_row_in_bold_not_the_first_ones(engine):
    """"and to Spain?" is searched joined to "How much is shipping to Switzerland?": the
    table is right for both, but the row asked about now is Spain's."""
    await turn(engine, "How much is shipping to Switzerland?", "web:t2")
    reply = await turn(engine, "and to Spain?", "web:t2")
    assert reply.answered and "| **Spain, Italy** | **€11.90** |" in reply.answer, reply.answer
    assert "| Switzerland | €19.90 |" in reply.answer


async def test_a_french_follow_up_pointing_back_with_elle_stays_on_the_product(engine):
    """"et combien coûte-t-elle ?" after a question on the Rivage pendant light: *elle* is
    the light, as *it* is in "how much does it cost?"; the payment page (prices in euros)
    found by the message alone is not what was asked."""
    await turn(engine, "La suspension Rivage est-elle en rotin ?", "web:el1")
    reply = await turn(engine, "et combien coûte-t-elle ?", "web:el1")
    assert reply.answered and cites(reply, "ML1003") and "159" in reply.answer


@pytest.mark.parametrize("text", ["Proposez-vous des ateliers pour apprendre à fabriquer une lampe ?",
                                  "Do you run lamp-making workshops for children?", "你们卖太阳能板吗？"])
async def test_a_product_whose_name_shares_a_common_word_does_not_answer_for_that_word(engine, text):
    """"Atelier Floor Lamp" (an atelier is a workshop) and "Solar Garden Lantern" pass the
    name's cosine bar on a workshop or a solar panel; nothing in these asks for a floor lamp
    or a garden lantern (knowledge/subjects.py)."""
    assert not cites(await turn(engine, text), "offers#")


@pytest.mark.parametrize("question, product", [("combien coûte le lampadaire atelier ?", "ML1002"),
                                               ("is the opaline lamp in stock?", "ML1001"),
                                               ("黄铜烛台一套几个？", "ML1018")])
async def test_a_product_named_without_its_whole_name_is_still_answered_from_its_sheet(engine, question, product):
    reply = await turn(engine, question, f"web:n{product}")
    assert reply.answered and cites(reply, product)


async def test_a_french_question_on_a_french_page_is_not_held_to_a_cross_language_bar(engine):
    """e5 scores any two French texts high, so the right French section's rescaled relevance
    is low (0.25 here): the `fr_fr` offset of bot/evidence.py."""
    reply = await turn(engine, "Nous sommes une société belge avec un numéro de TVA. Pouvons-nous être facturés "
                               "hors TVA ?")
    assert reply.answered and cites(reply, "fr/factures")
