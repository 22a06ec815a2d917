"""Real Redis for tests: the design forbids fakes, and a server we start is one we may flush."""

from __future__ import annotations

import redis

from producer.embedded_redis import EmbeddedRedis


def start_redis_server(*, tcp: bool = False) -> EmbeddedRedis:
    """Start a private server; the caller (a session fixture) must `stop()` it."""
    return EmbeddedRedis(tcp=tcp, maxclients=1_000).start()


def clean_client(server: EmbeddedRedis) -> redis.Redis:
    """A client on an emptied server, so each test starts from nothing.

    Only ever called with a server this test session started: flushing is safe there.
    """
    client = server.client()
    client.flushall()
    return client
