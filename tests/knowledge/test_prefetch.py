"""Prefetching a connector: every item in order, bounded look-ahead, the connector's error
raised where it happened, and a consumer that leaves early stops the producer."""
from __future__ import annotations

import itertools
import threading

import pytest

from knowledge.prefetch import prefetched


def test_every_item_arrives_in_order():
    assert list(prefetched(iter(range(500)), depth=7)) == list(range(500))


def test_the_producer_stays_at_most_depth_ahead_and_stops_when_the_consumer_leaves():
    produced = itertools.count()
    endless = (next(produced) for _ in itertools.count())
    items = prefetched(endless, depth=5)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()  # joins the producer
    assert next(produced) <= 3 + 5 + 1  # what was read, queued, and one waiting to be queued
    assert not [t for t in threading.enumerate() if t.name == "prefetch"]


def test_the_connectors_error_is_raised_after_the_items_before_it():
    def connector():
        yield "a"
        yield "b"
        raise ConnectionError("the API went away")

    got = []
    with pytest.raises(ConnectionError, match="went away"):
        for item in prefetched(connector(), depth=1):
            got.append(item)
    assert got == ["a", "b"]
