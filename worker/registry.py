"""Who is out there: workers register themselves in Redis and refresh `last_seen`.

The producer targets hosts by glob against this registry and, when a host does not
answer, reports when it was last seen — the first thing an operator asks about a silent
host. One hash per host plus a sorted set by last-seen time keeps `lockstep hosts` to two
round trips however large the fleet.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from pydantic import Field

from worker.models import Model

PREFIX = "lockstep:"
HOSTS_KEY = PREFIX + "hosts"  # sorted set: host -> last_seen epoch
QUEUE_PREFIX = "lockstep.host."


def host_key(host: str) -> str:
    return f"{PREFIX}host:{host}"


def queue_name(host: str) -> str:
    """One durable queue per host: a task for a host that is down waits for it (bounded)."""
    return QUEUE_PREFIX + host


def lock_key(digest: str) -> str:
    return f"{PREFIX}lock:{digest}"


def audit_key(audit_id: str) -> str:
    return f"{PREFIX}audit:{audit_id}"


class HostInfo(Model):
    host: str
    platform: str
    environments: dict[str, str] = Field(default_factory=dict)  # name -> prefix
    default_environment: str | None = None
    source: str = "conda-meta"
    lockstep_version: str = ""
    queue: str = ""
    started_at: float = 0.0
    last_seen: float = 0.0
    state: str = "up"  # "up" while the worker runs, "stopped" after a clean shutdown


def register(client: redis.Redis, info: HostInfo) -> None:
    now = time.time()
    payload = info.model_copy(update={"last_seen": now})
    pipe = client.pipeline(transaction=False)
    pipe.set(host_key(info.host), payload.model_dump_json())
    pipe.zadd(HOSTS_KEY, {info.host: now})
    pipe.execute()


def mark_stopped(client: redis.Redis, info: HostInfo) -> None:
    register(client, info.model_copy(update={"state": "stopped"}))


def all_hosts(client: redis.Redis) -> list[HostInfo]:
    names = [
        n.decode() if isinstance(n, bytes) else str(n) for n in client.zrange(HOSTS_KEY, 0, -1)
    ]
    return [h for h in get_hosts(client, names).values() if h is not None]


def get_hosts(client: redis.Redis, names: list[str]) -> dict[str, HostInfo | None]:
    if not names:
        return {}
    raw: list[Any] = client.mget([host_key(n) for n in names])
    found: dict[str, HostInfo | None] = {}
    for name, value in zip(names, raw, strict=True):
        info: HostInfo | None = None
        if value is not None:
            try:
                info = HostInfo.model_validate(json.loads(value))
            except (ValueError, TypeError):
                info = None
        found[name] = info
    return found


def forget(client: redis.Redis, host: str) -> None:
    client.delete(host_key(host))
    client.zrem(HOSTS_KEY, host)
