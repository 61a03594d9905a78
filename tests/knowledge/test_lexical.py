"""Index terms for French, English and Chinese."""
from knowledge.lexical import terms


def test_french_is_stemmed_and_accent_folded():
    assert terms("délais de livraison", "fr") == terms("delai livraisons", "fr")


def test_stop_words_are_dropped():
    assert terms("what are the delivery times", "en") == terms("delivery times", "en")


def test_chinese_is_segmented_into_words():
    words = terms("退货政策是什么", "zh")
    assert "退货" in words and "政策" in words


def test_mixed_scripts_keep_both():
    words = terms("iPhone 退货 policy", "en")
    assert "退货" in words and "polici" in words and "iphon" in words
