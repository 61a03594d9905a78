"""The door's activity shared with the answers child (bot/door.py): a process that inherits the
descriptor sees the web process's bursts, and an answer worker lets a burst go first."""
from __future__ import annotations

import asyncio
import subprocess
import sys

from bot.delivery import Pipeline
from bot.door import GAP, Door
from bot.queue import SqliteQueue

# What a child of `serve` sees: the door mapped from the descriptor it inherited.
LOOK = "import sys; from bot.door import Door; print(Door(int(sys.argv[1])).busy())"


def _child_sees(door: Door) -> bool:
    seen = subprocess.run([sys.executable, "-c", LOOK, str(door.fd)], pass_fds=(door.fd,), capture_output=True,
                          text=True, check=True)
    return seen.stdout.strip() == "True"


def test_a_child_process_sees_the_door_busy_while_a_delivery_is_stored():
    door = Door.shareable(clock=lambda: 0.0)  # the last delivery ended at 0.0 on the machine's monotonic clock: long ago
    door.enter()
    door.enter()
    assert _child_sees(door)
    door.leave()
    assert _child_sees(door)  # one is still being stored
    door.leave()
    assert not _child_sees(door)


def test_a_burst_lasts_until_the_door_was_quiet_for_the_gap():
    now = [100.0]
    door = Door(clock=lambda: now[0])
    assert not door.busy()
    door.enter()
    door.leave()
    assert door.busy()  # the next wave of the burst comes sooner than GAP
    now[0] += GAP * 1.01
    assert not door.busy()


async def test_an_answer_worker_waits_for_the_burst_at_the_door(tmp_path):
    """While the door is storing deliveries, a worker takes no job (its clock is stopped here, so
    the burst never ends on its own); once the door is quiet, it takes the job."""
    now = [100.0]
    queue = SqliteQueue(tmp_path / "queue.sqlite3")
    pipeline = Pipeline(queue, workers=1)
    pipeline.door = Door(clock=lambda: now[0])
    await queue.put("d1", "nobody", "c1", {})
    pipeline.door.enter()  # a delivery being stored
    stepping = asyncio.create_task(pipeline.step(wait=5.0))
    done, _ = await asyncio.wait([stepping], timeout=0.5)  # without the wait, the job is taken at once
    assert not done
    pipeline.door.leave()
    now[0] += GAP * 1.01
    assert await asyncio.wait_for(stepping, 30)  # taken (and handed back: no handler for "nobody")
    await queue.close()
