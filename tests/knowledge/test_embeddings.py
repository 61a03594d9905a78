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
