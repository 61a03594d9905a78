"""Runs an ASGI app on 127.0.0.1 in a background thread, for fake third-party services.

The real SDKs under test talk real HTTP to these servers, so protocol details (headers,
streaming, status codes) are exercised as in production.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Iterator

import uvicorn

from adapters.closing import ClosingServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(app, port: int | None = None, lifespan: bool = False) -> Iterator[str]:
    """Serve `app` until the block ends; yields its base URL. With `lifespan`, the app's
    start-up and shutdown run too (in the server's loop), as under `switchboard serve`."""
    port = port or free_port()
    server = ClosingServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                          lifespan="on" if lifespan else "off", access_log=False))  # as serve runs it
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:  # readiness wait, not timing: bounded by the deadline
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"fake server on port {port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
