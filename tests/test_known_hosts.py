"""The durable record of the fleet: Redis hash plus local state file, against real Redis."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from producer import known_hosts


def test_remember_survives_a_flush_and_forget_removes_both(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    env = {"LOCKSTEP_STATE_DIR": str(tmp_path / "state")}
    now = time.time()
    known_hosts.remember(redis_client, {"a": now - 10, "b": now}, env)
    known_hosts.remember(redis_client, {"a": now - 100}, env)  # never moves last-seen back
    assert known_hosts.known_hosts(redis_client, env) == {"a": now - 10, "b": now}
    assert redis_client.ttl(known_hosts.KNOWN_HOSTS_KEY) == -1  # never expires
    redis_client.flushall()  # a restart without persistence
    assert set(known_hosts.known_hosts(redis_client, env)) == {"a", "b"}
    path = known_hosts.state_file(redis_client, env)
    assert "pass" not in path.name and path.name.startswith("known-hosts-")
    known_hosts.forget(redis_client, ["a"], env)
    assert set(known_hosts.known_hosts(redis_client, env)) == {"b"}


def test_state_dir_follows_the_environment(tmp_path: Path) -> None:
    assert known_hosts.state_dir({"LOCKSTEP_STATE_DIR": "/x"}) == Path("/x")
    assert known_hosts.state_dir({"XDG_STATE_HOME": "/s"}) == Path("/s/lockstep")
    assert known_hosts.state_dir({}).parts[-3:] == (".local", "state", "lockstep")


def test_identity_has_no_credentials() -> None:
    client = redis.Redis.from_url("redis://user:s3cret@example.org:6380/2")
    assert known_hosts.broker_identity(client) == "example.org:6380/2"


def test_a_damaged_state_file_is_ignored(redis_client: redis.Redis, tmp_path: Path) -> None:
    env = {"LOCKSTEP_STATE_DIR": str(tmp_path)}
    path = known_hosts.state_file(redis_client, env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert known_hosts.known_hosts(redis_client, env) == {}
    known_hosts.remember(redis_client, {"c": 1.0}, env)
    assert known_hosts.known_hosts(redis_client, env) == {"c": 1.0}
