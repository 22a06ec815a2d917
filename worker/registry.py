"""Who is out there: workers register themselves in Redis and refresh `last_seen`.

The producer targets hosts by glob against this registry and, when a host does not
answer, reports when it was last seen — the first thing an operator asks about a silent
host. One hash per host plus a sorted set by last-seen time keeps `lockstep hosts` to two
round trips however large the fleet.

One name, one process: two workers started with the same `--hostname` used to share a queue
and a registry entry, and the host's verdict flipped with whichever of them took the task. A
worker now holds a lease on its name (`lockstep:owner:<host>`, SET NX with a TTL of a few
refresh periods) and every heartbeat refreshes the lease and the entry in one Lua script that
does nothing unless this process still holds it. A second worker for a live name refuses to
start; `--replace` takes the lease, and the old worker, finding it gone, stops without
writing over the new owner's entry.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import Field

from worker.config import ConfigError
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
    instance: str = ""  # the serving process (Verifier.instance); verdicts carry it too


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
    client.delete(host_key(host), owner_key(host))
    client.zrem(HOSTS_KEY, host)


# ------------------------------------------------------------------------------ name lease


def owner_key(host: str) -> str:
    return f"{PREFIX}owner:{host}"


class HostNameTaken(ConfigError):
    """Another live worker serves this host name (exit 2: pick a name or pass --replace)."""


@dataclass(frozen=True)
class Lease:
    """Who holds a host name: this process's instance, machine and pid."""

    instance: str
    node: str
    pid: int
    ttl: float

    @classmethod
    def mine(cls, instance: str, ttl: float) -> Lease:
        return cls(instance, _node(), os.getpid(), ttl)

    @property
    def value(self) -> str:
        return json.dumps({"instance": self.instance, "node": self.node, "pid": self.pid})

    @property
    def ttl_ms(self) -> int:
        return max(1000, int(self.ttl * 1000))


def lease_ttl(refresh_seconds: float) -> float:
    """Three missed heartbeats (at least 5 s) before a silent holder loses its name."""
    return max(5.0, 3.0 * refresh_seconds)


def _node() -> str:
    try:
        machine = open("/etc/machine-id").read().strip()[:12]  # noqa: SIM115
    except OSError:
        machine = ""
    return f"{socket.gethostname()}/{machine}" if machine else socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process, or nothing we can judge
    return True


# KEYS: owner, host entry, hosts zset; ARGV: lease value, ttl ms, entry JSON ('' = lease only),
# now, host, mode ('refresh' keeps the lease, 'release' drops it). 0 when the name is not ours.
_OWNED_WRITE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
if ARGV[6] == 'release' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
end
return 1
"""
# KEYS: owner; ARGV: expected holder, new holder, ttl ms. Replace only the holder we judged.
_SWAP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


def _text(value: object) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def claim(client: redis.Redis, host: str, lease: Lease, *, replace: bool = False) -> str | None:
    """Take the name's lease; returns the instance replaced, if any, or raises HostNameTaken.

    A holder on this very machine whose pid is gone (a crash, SIGKILL, a reboot) is taken over
    at once, so a supervisor's restart is not refused for the lease's lifetime.
    """
    key = owner_key(host)
    for _ in range(5):
        if client.set(key, lease.value, nx=True, px=lease.ttl_ms):
            return None
        current: Any = client.get(key)
        if current is None:
            continue  # expired or released between the two calls
        held = _text(current)
        try:
            holder = json.loads(held)
            other = str(holder.get("instance", ""))
            node, pid = str(holder.get("node", "")), int(holder.get("pid", 0))
        except (ValueError, TypeError, AttributeError):
            other, node, pid = "", "", 0
        # our own pid in the lease is an earlier incarnation (a container's pid 1, restarted)
        dead_here = node == lease.node and pid > 0 and (pid == lease.pid or not _pid_alive(pid))
        if not (replace or dead_here or not other):
            raise HostNameTaken(_taken_message(client, host, other, node, pid))
        if client.eval(_SWAP, 1, key, held, lease.value, lease.ttl_ms):
            return other
    raise HostNameTaken(f"host name {host!r}: could not take its lease (contended); try again")


def _taken_message(client: redis.Redis, host: str, other: str, node: str, pid: int) -> str:
    seen = ""
    info = get_hosts(client, [host]).get(host)
    if info is not None and info.last_seen:
        seen = f", last seen {max(0.0, time.time() - info.last_seen):.0f} s ago"
    return (
        f"host name {host!r} is already served by a live worker (instance {other[:12]} on "
        f"{node or 'an unknown machine'}, pid {pid}{seen}): stop it, choose another "
        "--hostname, or pass --replace to take the name over"
    )


def register_owned(
    client: redis.Redis,
    host: str,
    lease: Lease,
    info: HostInfo | None = None,
    *,
    release: bool = False,
) -> bool:
    """Refresh (or, at shutdown, release) the lease and write `info`, only while we hold it.

    With `info` None only the lease is refreshed (the worker is still starting). A lease
    that vanished (Redis restarted without its data) is taken again.
    """
    now = time.time()
    entry = "" if info is None else info.model_copy(update={"last_seen": now}).model_dump_json()
    keys = (owner_key(host), host_key(host), HOSTS_KEY)
    args = (lease.value, lease.ttl_ms, entry, now, host, "release" if release else "refresh")
    return bool(client.eval(_OWNED_WRITE, 3, *keys, *args))
