"""The door's activity, seen by the answer workers of the web process and of its answers
child: how many deliveries the web process is storing right now, and when it last stored one.

Answer workers let a burst at the door go first (`Pipeline.step`): a platform times its
acknowledgements (Slack retries after 3 s), an answer can start a few milliseconds later.
In the web process's own workers (`serve --answers inline`) that was an event of its loop;
the answers child of `serve` (the default, adapters/answers_process.py) runs on the other
core, where no scheduler priority keeps it from slowing the door: at niceness 10, and even
under SCHED_IDLE, Telegram's acks beside it were ×1.5-2.0 the no-op SDK app's at p50 against
×1.1 with nothing answering (docs/benchmarks.md, session 17). So the two processes share
these 16 bytes: a file the web process opens (unlinked) and maps, whose descriptor the child
inherits and maps too. Only the web process's event loop writes it; readers poll it while a
burst lasts, so a stale or torn read costs one poll, never a lost answer (the wait is bounded).
"""
from __future__ import annotations

import asyncio
import mmap
import os
import struct
import tempfile
import time
from typing import Callable

GAP = 0.005  # seconds without a delivery that end a burst: a platform's next wave comes sooner
POLL = 0.002  # seconds between looks while the door is busy

_LAYOUT = struct.Struct("qd")  # deliveries being stored now; monotonic time the last one ended


class Door:
    """A door's activity in shared memory: the web process `enter`s and `leave`s around each
    delivery it stores; answer workers, in it or in its child, wait until it is `quiet`."""

    def __init__(self, fd: int | None = None, *, clock: Callable[[], float] = time.monotonic):
        """The door of this process alone (in its own memory), or the one whose descriptor `fd`
        (`shareable().fd`) a parent passed down. `clock` must be the machine's monotonic clock
        wherever the door is shared."""
        self.clock = clock
        self.fd = fd
        self._map = mmap.mmap(-1 if fd is None else fd, _LAYOUT.size)

    @classmethod
    def shareable(cls, *, clock: Callable[[], float] = time.monotonic) -> "Door":
        """A new door in an unlinked file, whose descriptor (`fd`) a child process inherits."""
        file = tempfile.TemporaryFile(prefix="switchboard-door-")
        os.ftruncate(file.fileno(), _LAYOUT.size)
        door = cls(file.fileno(), clock=clock)
        door._file = file  # open as long as the door: the child maps the same file
        return door

    def _read(self) -> tuple[int, float]:
        return _LAYOUT.unpack_from(self._map)

    def enter(self) -> None:
        storing, last = self._read()
        _LAYOUT.pack_into(self._map, 0, storing + 1, last)

    def leave(self) -> None:
        storing, _ = self._read()
        _LAYOUT.pack_into(self._map, 0, max(storing - 1, 0), self.clock())

    def busy(self) -> bool:
        """A delivery is being stored, or one was less than GAP ago (the burst goes on)."""
        storing, last = self._read()
        return storing > 0 or self.clock() - last < GAP

    async def quiet(self, limit: float) -> None:
        """Return once the door is not busy, or after `limit` seconds at most."""
        deadline = self.clock() + limit
        while self.busy() and self.clock() < deadline:
            await asyncio.sleep(POLL)
