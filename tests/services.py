"""Real Redis and PostgreSQL servers for the tests, started on free ports in temp dirs.

`.ci/run` (through scripts/install-test-services) makes sure the binaries exist. PostgreSQL
refuses to run as root, so as root it runs as the `postgres` user.

`redis_server()` and `postgres_server()` yield a URL for the whole block. For outage tests,
`redis_service()` and `postgres_service()` yield a `Service` the test stops and starts again
(same port, same data): a server of its own, never the session's shared one.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

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


def _pg_prefix() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _initdb(tmp: str) -> Path:
    """A new PostgreSQL data folder in `tmp` (owned by `postgres` when running as root)."""
    data = Path(tmp) / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run([*_pg_prefix(), _pg_binary("initdb"), "-D", str(data), "-U", "switchboard", "--auth=trust",
                    "--no-sync"], check=True, capture_output=True)
    return data


def _postgres_command(tmp: str, data: Path, port: int) -> list[str]:
    return [*_pg_prefix(), _pg_binary("postgres"), "-D", str(data), "-p", str(port),
            "-k", tmp, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]


def _postgres_ready(url: str) -> Callable[[], bool]:
    import psycopg

    def ready() -> bool:
        try:
            psycopg.connect(url, connect_timeout=1).close()
            return True
        except psycopg.OperationalError:
            return False
    return ready


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        data = _initdb(tmp)
        process = subprocess.Popen(_postgres_command(tmp, data, port),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"postgresql://switchboard@127.0.0.1:{port}/postgres"
        try:
            _wait(_postgres_ready(url), "postgres", process)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)


class Service:
    """A server a test can stop and start again: same command, port and data, so the
    clients' URL stays valid across the outage."""

    def __init__(self, what: str, url: str, command: list[str], ready: Callable[[], bool],
                 halt: Callable[[subprocess.Popen], None]):
        self.what, self.url = what, url
        self._command, self._ready, self._halt = command, ready, halt
        self._process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self._process is not None

    def start(self) -> None:
        """Start the server (if stopped) and return once it accepts connections."""
        if self._process is None:
            self._process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait(self._ready, self.what, self._process)

    def stop(self) -> None:
        """Stop the server (if running) and return once its process has exited."""
        if self._process is not None:
            self._halt(self._process)
            self._process.wait(timeout=20)
            self._process = None


@contextlib.contextmanager
def postgres_service() -> Iterator[Service]:
    """A PostgreSQL of the test's own, started; `stop()` is a fast shutdown (open sessions
    are ended, as when the server goes away), `start()` brings the same database back."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        data = _initdb(tmp)
        url = f"postgresql://switchboard@127.0.0.1:{port}/postgres"

        def halt(process: subprocess.Popen) -> None:
            subprocess.run([*_pg_prefix(), _pg_binary("pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w"],
                           check=True, capture_output=True)
        service = Service("postgres", url, _postgres_command(tmp, data, port), _postgres_ready(url), halt)
        service.start()
        try:
            yield service
        finally:
            service.stop()


@contextlib.contextmanager
def redis_service() -> Iterator[Service]:
    """A redis-server of the test's own, started; `stop()` kills it (SIGKILL)."""
    binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError("redis-server not found: run scripts/install-test-services")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        import redis

        def ready() -> bool:
            try:
                return redis.Redis(port=port, socket_connect_timeout=0.2).ping()
            except redis.exceptions.ConnectionError:
                return False
        service = Service("redis-server", f"redis://127.0.0.1:{port}/0",
                          [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                           "--dir", tmp], ready, lambda process: process.kill())
        service.start()
        try:
            yield service
        finally:
            service.stop()
