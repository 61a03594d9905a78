"""Hybrid retrieval over the sample knowledge (scoping, visibility, languages) and over a one-language help center."""
import pytest

from knowledge.evaluation import JsonlCorpus
from knowledge.index import Index
from knowledge.ingest import Ingestor
from knowledge.retrieval import Retriever


def docs(hits):
    return [h.stored.chunk.document_id for h in hits]


def test_french_question_finds_the_french_article(retriever):
    assert docs(retriever.search("Quels sont les délais de livraison pour la Belgique ?"))[0] in (
        "fr/livraison", "qa_form#delivery_times@fr")


def test_chinese_question_finds_the_chinese_article(retriever):
    assert docs(retriever.search("退货需要多少天？", k=3))[0] in ("zh/returns", "zh/delivery")
    assert "zh/returns" in docs(retriever.search("退货需要多少天？", k=3))


@pytest.mark.parametrize("mode", ["lexical", "dense", "hybrid"])
def test_every_mode_finds_the_obvious_document(retriever, mode):
    hits = retriever.search("How many days do I have to return an item?", mode=mode, k=5)
    assert {"en/returns", "qa_form#custom_bulk_orders@en"} & set(docs(hits))
    assert all(h.coverage >= 0 for h in hits)


def test_sources_outside_the_profile_are_never_retrieved(retriever):
    # the delivery page answers this best, but the profile may only read the catalog
    hits = retriever.search("delivery times to Belgium for the Atelier Floor Lamp", sources=["catalog"], k=10)
    assert hits and {h.stored.chunk.source for h in hits} == {"catalog"}
    assert docs(hits)[0] == "offers#ML1002"


def test_a_product_sheet_is_evidence_only_for_a_question_naming_its_product(retriever):
    named = {"How much is the Atelier Floor Lamp?": "offers#ML1002",
             "Combien d'heures brûle la bougie parfumée figue et cèdre ?": "offers#ML1011",
             "Opaline台灯多少钱？": "offers#ML1001"}
    for question, offer in named.items():
        assert docs(retriever.search(question, k=5))[0] == offer, question
    for question in ("Can I rent a lamp for a wedding?", "可以按我的尺寸定制灯罩吗？",
                     "Fabriquez-vous des abat-jours sur mesure ?"):
        assert not any(d.startswith("offers#") for d in docs(retriever.search(question, k=8))), question


def test_a_question_is_quoted_from_the_translation_in_its_own_language(retriever):
    hits = retriever.search("Quels moyens de paiement acceptez-vous ?", k=8, language="fr")
    localized = retriever.localized("Quels moyens de paiement acceptez-vous ?", hits, "fr")
    assert localized[0].stored.chunk.document_id == "fr/paiement"
    assert localized[0].stored.chunk.heading.endswith("Moyens de paiement acceptés")
    # no Chinese page on payment: the English one stays
    hits = retriever.search("可以分三期付款吗？", k=8, language="zh")
    assert retriever.localized("可以分三期付款吗？", hits, "zh")[0].stored.language != "zh"


def test_a_translation_is_preferred_to_a_passage_of_the_same_form(retriever):
    """"Acceptez-vous PayPal ?" finds the English payment methods first, and the French gift
    wrapping entry ("Proposez-vous … ?") is as close in centred cosine: the translation wins."""
    hits = retriever.search("Acceptez-vous PayPal ?", k=8, language="fr")
    assert hits[0].stored.language == "en" and hits[0].stored.chunk.document_id == "en/payment"
    localized = retriever.localized("Acceptez-vous PayPal ?", hits, "fr")
    assert localized[0].stored.chunk.heading.endswith("Moyens de paiement acceptés")


@pytest.mark.parametrize("question, language, entry, document, heading", [
    ("Quel est le délai de retour ?", "fr", "qa_form#delivery_times@fr", "fr/retours", "Délai et conditions de retour"),
    ("Do you accept American Express?", "en", "qa_form#custom_international_outside_eu@en", "en/payment",
     "Accepted payment methods"),
])
def test_a_section_naming_what_a_leading_entry_lacks_takes_its_place(retriever, question, language, entry,
                                                                    document, heading):
    """A Q&A entry of the same form ranks first without the question's own words ("retour",
    "accept", "American Express"); the section that holds them and names one in its heading
    takes its place and score, and the entry leaves the hits, so it is no runner-up quoted
    beside it."""
    hits = retriever.search(question, k=8, language=language)
    assert hits[0].stored.chunk.document_id == document and hits[0].stored.chunk.heading.endswith(heading)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert entry not in [h.stored.chunk.document_id for h in hits]
    # nor does the entry's twin in another language, closer in centred cosine, take it back
    assert retriever.localized(question, hits, language)[0].stored.chunk.heading.endswith(heading)


@pytest.mark.parametrize("question, language, document, heading", [
    ("Comment suivre mon colis ?", "fr", "fr/livraison", "Suivre votre colis"),
    ("How do I track my parcel?", "en", "en/delivery", "Tracking your parcel"),
])
def test_a_section_whose_heading_says_all_the_question_says_goes_first(retriever, question, language, document,
                                                                       heading):
    """The lost-parcel entry is closer in cosine (its answer even says "tracking"), and the
    tracking section, which also covers missed deliveries, was not among the first 24 passages
    in French; its heading names every word of the question, the entry's question doesn't."""
    hits = retriever.search(question, k=8, language=language)
    assert hits[0].stored.chunk.document_id == document and hits[0].stored.chunk.heading.endswith(heading)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("question, language, document, heading", [
    ("How do I follow my package?", "en", "en/delivery", "Tracking your parcel"),
    ("怎么查询物流？", "zh", "zh/delivery", "包裹追踪"),
    ("Combien de temps ai-je pour renvoyer un article ?", "fr", "fr/retours", "Délai et conditions de retour"),
])
def test_the_customers_words_find_the_help_centers(retriever, question, language, document, heading):
    """The question's words are not the page's (follow/track, package/parcel, 查询/追踪,
    renvoyer/retour, combien de temps/délai): knowledge/synonyms.py. Before, the first was
    answered from the account page, the second declined, the third answered from the
    delivery-times entry."""
    hits = retriever.search(question, k=8, language=language, public_only=True)
    assert hits[0].stored.chunk.document_id == document and hits[0].stored.chunk.heading.endswith(heading)
    assert hits[0].coverage == 1.0


def test_an_entry_holding_every_word_of_the_question_keeps_its_place(retriever):
    hits = retriever.search("Quels sont vos délais de livraison ?", k=8, language="fr")
    assert hits[0].stored.chunk.document_id == "qa_form#delivery_times@fr"


def test_internal_documents_only_without_public_only(retriever):
    question = "goodwill gesture refund without return staff policy"
    public = retriever.search(question, public_only=True, k=20)
    assert all(h.stored.visibility == "public" for h in public)
    private = retriever.search(question, public_only=False, k=5)
    assert any(h.stored.visibility == "internal" for h in private)


def test_unknown_mode_is_a_clear_error(retriever):
    with pytest.raises(ValueError, match="unknown retrieval mode"):
        retriever.search("x", mode="magic")


# A help center written in one language: French questions about personal data, one entry each.
ONE_LANGUAGE = [
    ("Combien de temps mes données sont-elles conservées ?",
     "Vos données sont conservées trois ans après votre dernier achat, puis supprimées."),
    ("Comment supprimer mon compte ?", "Allez dans Mon compte, puis Paramètres, et cliquez sur Supprimer le compte."),
    ("Puis-je m'opposer à la prospection par téléphone ?",
     "Oui : inscrivez-vous sur la liste d'opposition au démarchage téléphonique, c'est gratuit."),
    ("Qui peut consulter les images des caméras ?",
     "Seules les personnes habilitées par le responsable du système peuvent visionner les images."),
    ("Qu'est-ce qu'un cookie ?",
     "Un cookie est un petit fichier déposé sur votre terminal lors de la visite d'un site."),
    ("Mon employeur peut-il lire mes courriels ?",
     "Les messages identifiés comme personnels ne peuvent pas être ouverts par l'employeur."),
    ("Comment obtenir une copie de mes données ?",
     "Écrivez au responsable du fichier : il doit vous répondre dans un délai d'un mois."),
    ("Le délégué à la protection des données peut-il être externe ?",
     "Oui, le délégué peut être un salarié de l'organisme ou un prestataire extérieur."),
]


def test_a_one_language_index_ranks_passages_by_their_cosine(tmp_path, embedder):
    # Centring the vectors on each language's mean makes languages comparable; within one
    # language it only reorders passages, for the worse (cnil_fr, stackfaq: bench/retrieval.py).
    index = Index(tmp_path / "fr.sqlite3")
    try:
        rows = [{"id": f"fr-{i}", "title": title, "text": text} for i, (title, text) in enumerate(ONE_LANGUAGE)]
        Ingestor(index, embedder).ingest(JsonlCorpus(rows))
        retriever = Retriever(index, embedder)
        for question in ("Mes données, vous les gardez combien de temps ?", "Le DPO doit-il être un salarié ?",
                         "Comment arrêter les appels publicitaires ?", "Ai-je le droit de voir mes données ?",
                         "Je veux fermer mon compte", "C'est quoi un traceur ?"):
            cosines = [hit.dense for hit in retriever.search(question, mode="dense", k=8)]
            assert cosines == sorted(cosines, reverse=True), question
    finally:
        index.close()


def test_a_several_language_index_still_ranks_across_languages(retriever):
    # on the sample help center (English, French, Chinese) the centred cosine still counts:
    # on raw cosines alone the Chinese returns page came second to this question, by its language
    hits = retriever.search("可以分三期付款吗？", mode="dense", k=4)
    assert docs(hits)[0] == "en/payment"
    assert all(h.stored.language != "zh" for h in hits)
