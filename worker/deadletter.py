"""Where a worker puts the messages it refuses, so one bad item cannot stop a host.

A queue item the worker cannot read (not JSON, the wrong envelope, an unknown task, a body of
the wrong shape, a bad signature) used to end the worker; restored from `unacked`, it then
ended every restart too. Now it is acknowledged and kept here for an operator: one Redis list
per host, newest first, bounded in length and in bytes per entry, so a flood of garbage costs
Redis at most `MAX_ENTRIES * MAX_RAW_BYTES` per host.

Entries are JSON: the reason, the time, the audit id when one could be read, the item's size
and its first bytes (base64). Nothing of the worker's own configuration is ever stored, so
showing an entry cannot reveal a broker password or the fleet key.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable
from typing import Any

import redis

from worker.models import Model
from worker.registry import PREFIX

MAX_ENTRIES = 1000
MAX_RAW_BYTES = 4096
MAX_REASON_CHARS = 500


def deadletter_key(host: str) -> str:
    return f"{PREFIX}deadletter:{host}"


class DeadLetter(Model):
    reason: str
    time: float
    audit: str | None = None
    size: int = 0
    raw: str = ""  # base64 of the first MAX_RAW_BYTES bytes

    def head(self, limit: int = 64) -> bytes:
        try:
            return base64.b64decode(self.raw)[:limit]
        except ValueError:
            return b""


def entry(raw: bytes, reason: str, audit: str | None = None, when: float | None = None) -> bytes:
    """The stored form of one refused item (truncated; reason bounded)."""
    letter = DeadLetter(
        reason=reason[:MAX_REASON_CHARS],
        time=time.time() if when is None else when,
        audit=audit,
        size=len(raw),
        raw=base64.b64encode(raw[:MAX_RAW_BYTES]).decode("ascii"),
    )
    return letter.model_dump_json().encode("utf-8")


def record(client: redis.Redis, host: str, raw: bytes, reason: str, audit: str | None) -> None:
    """LPUSH + LTRIM in one round trip: the list never holds more than MAX_ENTRIES."""
    key = deadletter_key(host)
    pipe = client.pipeline(transaction=True)
    pipe.lpush(key, entry(raw, reason, audit))
    pipe.ltrim(key, 0, MAX_ENTRIES - 1)
    pipe.execute()


def counts(client: redis.Redis, hosts: Iterable[str]) -> dict[str, int]:
    names = list(hosts)
    if not names:
        return {}
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(deadletter_key(name))
    return {name: int(n) for name, n in zip(names, pipe.execute(), strict=True)}


def entries(client: redis.Redis, host: str, limit: int = MAX_ENTRIES) -> list[DeadLetter]:
    raw: list[Any] = client.lrange(deadletter_key(host), 0, max(0, limit - 1))
    found = []
    for item in raw:
        try:
            found.append(DeadLetter.model_validate(json.loads(item)))
        except (ValueError, TypeError):
            found.append(DeadLetter(reason="unreadable dead-letter entry", time=0.0))
    return found


def hosts_with_letters(client: redis.Redis) -> list[str]:
    """Hosts that have a dead-letter list, registered or not (SCAN, never KEYS)."""
    prefix = deadletter_key("")
    names = set()
    for key in client.scan_iter(match=prefix + "*", count=1000):
        text = key.decode("utf-8", errors="replace") if isinstance(key, bytes) else str(key)
        names.add(text[len(prefix) :])
    return sorted(names)


def clear(client: redis.Redis, host: str) -> int:
    return int(client.delete(deadletter_key(host)))
