"""Prefetch: read a connector's documents in a thread while the previous ones are embedded.

A first sync alternates network reads (pages, blocks, exports) with embedding; run one after
the other, the CPU idles during each read and the network during each embedding. `prefetched`
iterates the connector in a producer thread, at most `depth` items ahead of the consumer, so
memory stays bounded however large the source. Items arrive in the connector's order; an
exception the connector raises is raised in the consumer, at the point it was reached, so a
failed pass fails exactly as before; a consumer that stops early stops the producer too.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
DEPTH = 64
_DONE = object()


@dataclass(frozen=True)
class _Raised:
    error: BaseException


def prefetched(items: Iterable[T], depth: int = DEPTH) -> Iterator[T]:
    """The items of `items`, read by a thread up to `depth` ahead."""
    ahead: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                ahead.put(value, timeout=0.1)  # wakes up to notice a consumer that left
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Raised(exc))

    thread = threading.Thread(target=produce, daemon=True, name="prefetch")
    thread.start()
    try:
        while (item := ahead.get()) is not _DONE:
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
