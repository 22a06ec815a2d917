"""The fleet lockstep last saw, kept apart from the registry so a Redis restart cannot shrink it.

The registry only holds workers that registered since Redis last started. Right after a
restart without persistence, `check --all` would otherwise audit the few workers that came
back first and exit 0 for a fleet it never looked at. So every audit records the hosts it
saw in two places: a Redis hash `lockstep:known-hosts` (host -> last seen; it never expires,
only `forget()` removes a name) and a local state file on the producer's side, which
survives the loss of every Redis key. Targets from `--all` or globs are the union.

The state file is named after the broker's identity (address and db, never credentials):
`$LOCKSTEP_STATE_DIR`, else `$XDG_STATE_HOME/lockstep`, else `~/.local/state/lockstep`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import redis

KNOWN_HOSTS_KEY = "lockstep:known-hosts"
STATE_DIR_ENV = "LOCKSTEP_STATE_DIR"


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV])
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "lockstep"
    return Path.home() / ".local" / "state" / "lockstep"


def broker_identity(client: redis.Redis) -> str:
    """`host:port/db`, `unix:path/db` or `sentinel:name/db`: where the fleet lives, no secrets."""
    pool: Any = client.connection_pool
    kwargs: dict[str, Any] = pool.connection_kwargs
    db = kwargs.get("db", 0)
    service = getattr(pool, "service_name", None)
    if service:
        return f"sentinel:{service}/{db}"
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}/{db}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


def state_file(client: redis.Redis, environ: Mapping[str, str] | None = None) -> Path:
    identity = broker_identity(client)
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
    return state_dir(environ) / f"known-hosts-{digest}.json"


def _decode(value: object) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _read_file(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no file yet, or a damaged one: the Redis hash still counts
    hosts = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(hosts, dict):
        return {}
    return {
        str(name): float(seen)
        for name, seen in hosts.items()
        if isinstance(seen, int | float) and not isinstance(seen, bool)
    }


def _write_file(path: Path, identity: str, hosts: Mapping[str, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"broker": identity, "hosts": dict(sorted(hosts.items()))}, indent=1)
    fd, tmp = tempfile.mkstemp(prefix=".known-hosts-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body + "\n")
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def known_hosts(client: redis.Redis, environ: Mapping[str, str] | None = None) -> dict[str, float]:
    """host -> last seen (epoch s), from the Redis hash and the local state file together."""
    raw: Any = client.hgetall(KNOWN_HOSTS_KEY)
    found: dict[str, float] = {}
    for name, seen in raw.items():
        try:
            found[_decode(name)] = float(_decode(seen))
        except ValueError:
            found[_decode(name)] = 0.0
    for name, seen in _read_file(state_file(client, environ)).items():
        found[name] = max(seen, found.get(name, 0.0))
    return found


def remember(
    client: redis.Redis, seen: Mapping[str, float], environ: Mapping[str, str] | None = None
) -> None:
    """Record hosts seen in this audit (registered or answering) in both places.

    A failing state file (read-only home in CI) must not fail the audit: the Redis hash
    still holds the record, and the error is the caller's to warn about.
    """
    if not seen:
        return
    current = known_hosts(client, environ)
    merged = {name: max(when, current.get(name, 0.0)) for name, when in seen.items()}
    client.hset(KNOWN_HOSTS_KEY, mapping={n: repr(w) for n, w in merged.items()})
    path = state_file(client, environ)
    _write_file(path, broker_identity(client), {**_read_file(path), **merged})


def forget(
    client: redis.Redis, names: Iterable[str], environ: Mapping[str, str] | None = None
) -> None:
    """Drop hosts that will never come back from both records (for `hosts --forget`)."""
    names = list(names)
    if not names:
        return
    client.hdel(KNOWN_HOSTS_KEY, *names)
    path = state_file(client, environ)
    hosts = _read_file(path)
    if any(name in hosts for name in names):
        for name in names:
            hosts.pop(name, None)
        _write_file(path, broker_identity(client), hosts)


def describe_last_seen(when: float, now: float | None = None) -> str:
    """`3 min ago` style, for a host known from earlier audits."""
    if when <= 0:
        return "at an unknown time"
    return ago(max(0.0, (time.time() if now is None else now) - when)) + " ago"


def ago(seconds: float) -> str:
    """A duration as an operator reads it: `42 s`, `3 min`, `5 h`, `2 days`."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
