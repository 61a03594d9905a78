"""Real Redis and PostgreSQL servers for the tests, started on free ports in temp dirs.

`.ci/run` (through scripts/install-test-services) makes sure the binaries exist. PostgreSQL
refuses to run as root, so as root it runs as the `postgres` user.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

from tests.fakes.server import free_port


def _wait(check, what: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # readiness poll, bounded: not a timing assumption
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not become ready in {timeout} s")
        time.sleep(0.05)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError("redis-server not found: run scripts/install-test-services")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
        try:
            import redis

            def ping() -> bool:
                try:
                    return redis.Redis(port=port, socket_connect_timeout=0.2).ping()
                except redis.exceptions.ConnectionError:
                    return False
            _wait(ping, "redis-server", process)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def _pg_binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if not found:
        raise RuntimeError(f"{name} not found: run scripts/install-test-services")
    return str(found)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        if as_root:
            shutil.chown(tmp, "postgres")
            shutil.chown(data, "postgres")
        subprocess.run([*prefix, _pg_binary("initdb"), "-D", str(data), "-U", "switchboard", "--auth=trust",
                        "--no-sync"], check=True, capture_output=True)
        process = subprocess.Popen([*prefix, _pg_binary("postgres"), "-D", str(data), "-p", str(port),
                                    "-k", tmp, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"postgresql://switchboard@127.0.0.1:{port}/postgres"
        try:
            import psycopg

            def ready() -> bool:
                try:
                    psycopg.connect(url, connect_timeout=1).close()
                    return True
                except psycopg.OperationalError:
                    return False
            _wait(ready, "postgres", process)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)
