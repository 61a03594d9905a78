"""Progressive answers: edits are bounded by time and size, and never overlap."""
from __future__ import annotations

import asyncio

from adapters.progressive import Progressive


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_edits_wait_for_enough_time_and_enough_new_text():
    shown: list[str] = []

    async def show(text: str) -> None:
        shown.append(text)

    clock = Clock()
    progressive = Progressive(show, interval=0.25, min_chars=40, clock=clock)
    await progressive.add("x" * 50)  # a first delta is not yet a stream
    await progressive.finish()
    assert shown == []
    await progressive.add("x" * 10)  # the stream goes on: 60 characters, first edit
    await progressive.finish()
    await progressive.add("y" * 100)  # plenty of text but no time has passed
    await progressive.finish()
    clock.now += 0.3
    await progressive.add("z")  # time passed, 101 new characters
    await progressive.finish()
    clock.now += 0.3
    await progressive.add("w" * 5)  # time passed, too little text
    await progressive.finish()
    assert [len(t) for t in shown] == [60, 161]
    assert progressive.text.endswith("zwwwww") and progressive.edits == 2


async def test_one_edit_in_flight_at_a_time_and_finish_waits_for_it():
    release = asyncio.Event()
    shown: list[str] = []

    async def slow_show(text: str) -> None:
        await release.wait()
        shown.append(text)

    clock = Clock()
    progressive = Progressive(slow_show, interval=0, min_chars=1, clock=clock)
    for n in range(10):
        await progressive.add(str(n))
    assert progressive.edits == 1  # the others arrived while the first edit was in flight
    release.set()
    await progressive.finish()
    assert shown == ["01"]


async def test_a_failing_edit_is_not_fatal():
    async def broken(text: str) -> None:
        raise RuntimeError("chat.update failed")

    progressive = Progressive(broken, min_chars=1, clock=Clock())
    await progressive.add("hello")
    await progressive.add(" world")
    assert progressive.edits == 1
    await progressive.finish()
    assert progressive.text == "hello world"
