"""A server subprocess for benchmarks: started, awaited until it listens, stopped with SIGINT."""
from __future__ import annotations

import contextlib
import signal
import subprocess
from typing import Iterator


@contextlib.contextmanager
def server(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """Run `command` from its "Uvicorn running on" line until the block ends (graceful SIGINT)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stderr:
            if "Uvicorn running on" in line:
                break
        else:
            raise RuntimeError(f"{command} did not start")
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
