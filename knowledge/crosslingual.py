"""Language-neutral similarity for a multilingual embedder.

multilingual-e5 places every text of one language in a cone of its own: a Chinese
question scores 0.85-0.88 against *any* Chinese passage and ~0.80 against the English page
that answers it. Ranked on raw cosines, a Chinese question about invoices (only English and
French pages exist) gets an unrelated Chinese page. Two measured corrections, from the same
small set of parallel sentences (the same support questions in each language, shipped here;
nothing is downloaded):

- **Ranking** subtracts from each cosine what an unrelated passage of that language
  scores with a question of this language (`unrelated[(q, d)]`): a constant per language
  pair, so rankings within one language are unchanged (stackfaq and cnil_fr measure the
  same as raw cosines) and the other-language page that answers beats an unrelated page
  in the question's language.
- **Centred cosines** subtract each language's mean vector (queries with the query prefix,
  passages with the passage prefix) before the cosine: what is left is the topic. They are
  one of the confidence's signals (bot/evidence.py).
- **Confidence** rescales a raw cosine by the language pair: `unrelated[(q, d)]` is the
  mean cosine of a question with passages that don't answer it, `related[(q, d)]` with its
  own translation. A Chinese-to-Chinese 0.86 is then as weak as an English-to-English 0.79.

Centred scores are computed without a second copy of the matrix: for a row m of language
l and a query v of language L, (m - p_l)·(v - q_L) = m·v - m·q_L - p_l·v + p_l·q_L, with
the rows' centred norms computed once per index generation.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from knowledge.embeddings import Embedder

# The same twenty support sentences in each language (questions and statements): what
# differs between languages here is the language, not the topic.
PARALLEL: Mapping[str, tuple[str, ...]] = {
    "en": ("What are your delivery times?", "How much does shipping cost?", "Can I return an item?",
           "When will I get my refund?", "Is this product covered by a warranty?", "How do I get an invoice?",
           "Can I pay in instalments?", "Where is your store?", "How do I reset my password?",
           "My parcel arrived damaged.", "Do you offer a discount for students?", "How do I delete my account?",
           "The lamp does not turn on anymore.", "Can someone else collect my order?",
           "Which payment methods do you accept?", "Your order has shipped and will arrive in three days.",
           "Opening hours are Tuesday to Saturday, 10 am to 7 pm.", "Please contact our customer service by email.",
           "The product is out of stock.", "I would like to change my delivery address."),
    "fr": ("Quels sont vos délais de livraison ?", "Combien coûte la livraison ?", "Puis-je retourner un article ?",
           "Quand serai-je remboursé ?", "Ce produit est-il couvert par une garantie ?",
           "Comment obtenir une facture ?", "Puis-je payer en plusieurs fois ?", "Où se trouve votre magasin ?",
           "Comment réinitialiser mon mot de passe ?", "Mon colis est arrivé abîmé.",
           "Proposez-vous une réduction pour les étudiants ?", "Comment supprimer mon compte ?",
           "La lampe ne s'allume plus.", "Quelqu'un d'autre peut-il retirer ma commande ?",
           "Quels moyens de paiement acceptez-vous ?", "Votre commande a été expédiée et arrivera dans trois jours.",
           "Les horaires d'ouverture sont du mardi au samedi, de 10 h à 19 h.",
           "Veuillez contacter notre service client par e-mail.", "Le produit est en rupture de stock.",
           "Je voudrais changer mon adresse de livraison."),
    "zh": ("你们的配送时间是多久？", "运费是多少？", "我可以退货吗？", "我什么时候能收到退款？", "这个产品有保修吗？",
           "我怎么获取发票？", "可以分期付款吗？", "你们的门店在哪里？", "我怎么重置密码？", "我的包裹到货时已损坏。",
           "学生有折扣吗？", "我怎么删除我的账户？", "这盏灯不亮了。", "别人可以帮我取货吗？", "你们接受哪些付款方式？",
           "您的订单已发货，三天内送达。", "营业时间为周二至周六，上午10点至晚上7点。", "请通过电子邮件联系我们的客服。",
           "该产品目前缺货。", "我想更改我的收货地址。"),
    "de": ("Wie lange dauert die Lieferung?", "Wie viel kostet der Versand?", "Kann ich einen Artikel zurückgeben?",
           "Wann bekomme ich meine Erstattung?", "Hat dieses Produkt eine Garantie?",
           "Wie bekomme ich eine Rechnung?", "Kann ich in Raten zahlen?", "Wo ist Ihr Geschäft?",
           "Wie setze ich mein Passwort zurück?", "Mein Paket kam beschädigt an.",
           "Gibt es einen Rabatt für Studenten?", "Wie lösche ich mein Konto?", "Die Lampe geht nicht mehr an.",
           "Kann jemand anderes meine Bestellung abholen?", "Welche Zahlungsmethoden akzeptieren Sie?",
           "Ihre Bestellung wurde versandt und kommt in drei Tagen an.",
           "Geöffnet ist Dienstag bis Samstag, 10 bis 19 Uhr.", "Bitte kontaktieren Sie unseren Kundenservice per E-Mail.",
           "Das Produkt ist nicht auf Lager.", "Ich möchte meine Lieferadresse ändern."),
    "es": ("¿Cuáles son los plazos de entrega?", "¿Cuánto cuesta el envío?", "¿Puedo devolver un artículo?",
           "¿Cuándo recibiré mi reembolso?", "¿Este producto tiene garantía?", "¿Cómo obtengo una factura?",
           "¿Puedo pagar a plazos?", "¿Dónde está su tienda?", "¿Cómo restablezco mi contraseña?",
           "Mi paquete llegó dañado.", "¿Ofrecen descuento para estudiantes?", "¿Cómo elimino mi cuenta?",
           "La lámpara ya no se enciende.", "¿Otra persona puede recoger mi pedido?",
           "¿Qué métodos de pago aceptan?", "Su pedido ha sido enviado y llegará en tres días.",
           "Abrimos de martes a sábado, de 10 a 19 h.", "Contacte con nuestro servicio de atención al cliente por correo.",
           "El producto está agotado.", "Me gustaría cambiar mi dirección de entrega."),
}
REFERENCE = "en"  # languages without parallel sentences are treated like this one


@dataclass(frozen=True)
class LanguageSpace:
    """Per-language mean vectors and cosine baselines, measured on `PARALLEL`."""

    query_means: Mapping[str, np.ndarray]
    passage_means: Mapping[str, np.ndarray]
    unrelated: Mapping[tuple[str, str], float]
    related: Mapping[tuple[str, str], float]

    @classmethod
    def measure(cls, embedder: Embedder) -> "LanguageSpace":
        queries = {lang: np.stack([embedder.query(s) for s in sentences]) for lang, sentences in PARALLEL.items()}
        passages = {lang: embedder.passages(list(sentences)) for lang, sentences in PARALLEL.items()}
        others = ~np.eye(len(PARALLEL[REFERENCE]), dtype=bool)
        unrelated, related = {}, {}
        for q, qv in queries.items():
            for d, dv in passages.items():
                scores = qv @ dv.T
                unrelated[q, d] = float(scores[others].mean())
                related[q, d] = float(np.diag(scores).mean())
        return cls({k: v.mean(axis=0) for k, v in queries.items()}, {k: v.mean(axis=0) for k, v in passages.items()},
                   unrelated, related)

    def _lang(self, language: str) -> str:
        return language if language in self.query_means else REFERENCE

    def query_topic(self, vector: np.ndarray, language: str) -> np.ndarray:
        """A question's vector with its language's mean removed, unit length: its topic."""
        return _unit(vector - self.query_means[self._lang(language)])

    def passage_topic(self, vector: np.ndarray, language: str) -> np.ndarray:
        """A passage's vector with its language's mean removed, unit length: its topic."""
        return _unit(vector - self.passage_mean(language))

    def passage_mean(self, language: str) -> np.ndarray:
        """The mean passage vector of `language` (of the reference language if unmeasured)."""
        return self.passage_means[self._lang(language)]

    def row_norms(self, matrix: np.ndarray, languages: np.ndarray) -> np.ndarray:
        """|m - p_l| of every row (the centred norm), computed once per index generation."""
        squared = np.einsum("ij,ij->i", matrix, matrix)
        for language in np.unique(languages):
            rows = languages == language
            mean = self.passage_means[self._lang(str(language))]
            squared[rows] += float(mean @ mean) - 2.0 * (matrix[rows] @ mean)
        return np.sqrt(np.maximum(squared, 1e-12))

    def centred(self, matrix: np.ndarray, languages: np.ndarray, norms: np.ndarray, raw: np.ndarray,
                vector: np.ndarray, language: str) -> np.ndarray:
        """Cosines of (rows - their language's mean) with (vector - its language's mean)."""
        query_mean = self.query_means[self._lang(language)]
        centred_query = vector - query_mean
        scores = raw - matrix @ query_mean
        for doc_language in np.unique(languages):
            rows = languages == doc_language
            mean = self.passage_means[self._lang(str(doc_language))]
            scores[rows] += float(mean @ query_mean) - float(mean @ vector)
        return scores / (norms * max(float(np.linalg.norm(centred_query)), 1e-6))

    def adjusted(self, raw: np.ndarray, languages: np.ndarray, language: str) -> np.ndarray:
        """Raw cosines minus what an unrelated passage of each row's language scores with a
        question in `language`: one constant per language pair, so a ranking within one
        language is the raw ranking, and across languages no passage wins by its language."""
        scores = raw.copy()
        for doc_language in np.unique(languages):
            rows = languages == doc_language
            scores[rows] -= self.unrelated[self._lang(language), self._lang(str(doc_language))]
        return scores

    def relevance(self, cosine: float, query_language: str, doc_language: str) -> float:
        """A raw cosine as a share of the way from "unrelated" to "its own translation" for
        this language pair, doubled so that half-way already counts as fully close (the
        scale bot/evidence.py was tuned on for English), clipped to [0, 1]."""
        pair = (self._lang(query_language), self._lang(doc_language))
        low, high = self.unrelated[pair], self.related[pair]
        return min(1.0, max(0.0, 2.0 * (cosine - low) / max(high - low, 1e-6)))


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-6)


@functools.lru_cache(maxsize=4)
def space_for(embedder: Embedder) -> LanguageSpace:
    """The measured space of one embedder (a second or so of embedding, once per process)."""
    return LanguageSpace.measure(embedder)
