"""Shared fixtures: real servers (Redis, PostgreSQL), the real embedder, and a sample
knowledge index built once per session (tests that change knowledge build their own)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.memory import InMemoryMemory
from bot.profiles import load_profiles
from bot.runtime import SAMPLE_DIR, SAMPLE_SOURCES
from bot.settings import DEFAULT_PROFILES
from bot.store import EventLog, connect
from knowledge.connectors.folder import FolderConnector
from knowledge.embeddings import E5Embedder
from knowledge.index import Index
from knowledge.ingest import Ingestor
from knowledge.retrieval import Retriever
from tests.fakes.jira_api import FakeJira
from tests.fakes.openai_server import running
from tests.fakes.server import serve
from tests.pgvector_service import pgvector_server
from tests.services import postgres_server, redis_server

pytest_plugins = ["tests.adapters.slack_workspace"]  # the `fake_slack` fixture

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_url():
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url():
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def pgvector_url():
    """A PostgreSQL with pgvector (tests/pgvector_service.py), for the PostgreSQL index."""
    with pgvector_server() as url:
        yield url


@pytest.fixture(scope="session")
def embedder():
    return E5Embedder()


@pytest.fixture(scope="session")
def sample_index_path(tmp_path_factory, embedder) -> Path:
    path = tmp_path_factory.mktemp("sample") / "index.sqlite3"
    index = Index(path)
    for name, relative in SAMPLE_SOURCES:
        Ingestor(index, embedder).ingest(FolderConnector(SAMPLE_DIR / relative, name))
    index.close()
    return path


@pytest.fixture
def sample_index(sample_index_path, tmp_path):
    """A private copy of the sample index, free to change."""
    copy = tmp_path / "index.sqlite3"
    shutil.copy(sample_index_path, copy)
    index = Index(copy)
    yield index
    index.close()


@pytest.fixture
def retriever(sample_index, embedder):
    return Retriever(sample_index, embedder)


@pytest.fixture
def profiles():
    return load_profiles(DEFAULT_PROFILES)


@pytest.fixture
def events(tmp_path):
    log = EventLog(connect(f"sqlite:///{tmp_path / 'events.db'}"))
    yield log
    log.close()


@pytest.fixture
def memory():
    return InMemoryMemory()


@pytest.fixture
def openai_server():
    with running() as scripted:
        yield scripted


@pytest.fixture
def jira():
    """The fake Jira, served; `jira.url` is its address."""
    fake = FakeJira()
    with serve(fake.app()) as url:
        fake.url = url
        try:
            yield fake
        finally:
            fake.release()  # a request held by a test must not keep the server from stopping
