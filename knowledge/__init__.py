"""Switchboard's knowledge layer: documents, chunking, the index and hybrid retrieval.

Nothing here knows about bots or channels (tests/test_boundaries.py enforces it): the
engine in `bot/` asks a `Retriever` for passages and gets `Hit`s back.
"""
