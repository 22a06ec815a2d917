"""Fan a verification out to many hosts and collect what comes back by a deadline.

Never a chord and never `result.get()`: a host that is down must cost the audit nothing
but its own UNREACHABLE line. Each task expires at the deadline; verdicts arrive on one
audit-scoped Redis list that the collector drains with BLPOP (no per-task SUBSCRIBE);
messages left for silent hosts are trimmed so a dead host's queue stays bounded.
Publishing skips queue declaration (the default exchange routes straight to the queue
key the worker declared) and goes out in Redis pipelines (see `producer.publish`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from producer.locks.detect import load_lock
from producer.locks.interface import LockError, PlatformMissing
from worker import codec
from worker.broker import BrokerURL
from worker.models import HostReport, Lock, Status
from worker.registry import HostInfo, all_hosts, get_hosts, lock_key, queue_name
from worker.service import reply_key, unpack_reply

LOCK_TTL_SECONDS = 7 * 24 * 3600
MAX_PENDING_PER_HOST = 5
MAX_VERDICT_BYTES = 4 * 1024 * 1024
ProgressFn = Callable[[int, int], None]


class TargetError(Exception):
    """The targeting options select nothing usable (exit 2)."""


@dataclass(frozen=True)
class Target:
    host: str
    lock_path: Path
    env: str | None = None


@dataclass
class FleetOutcome:
    reports: list[HostReport]
    locks: dict[tuple[Path, str], Lock] = field(default_factory=dict)
    interrupted: bool = False


def match_hosts(patterns: Iterable[str], known: Iterable[str]) -> tuple[list[str], list[str]]:
    """Globs select among registered hosts; a literal name is kept even if never seen.

    Returns (hosts, patterns that matched nothing) so the CLI can warn about typos.
    """
    known_list = sorted(known)
    chosen: dict[str, None] = {}
    unmatched: list[str] = []
    for pattern in patterns:
        for part in (p.strip() for p in pattern.split(",")):
            if not part:
                continue
            if any(ch in part for ch in "*?["):
                hits = fnmatch.filter(known_list, part)
                if not hits:
                    unmatched.append(part)
                chosen.update(dict.fromkeys(hits))
            else:
                chosen[part] = None
    return list(chosen), unmatched


def lock_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FleetCheck:
    """One audit: targets in, one HostReport per target out, by the deadline."""

    def __init__(
        self,
        broker: BrokerURL,
        *,
        timeout: float,
        platform_default: str,
        lock_format: str | None = None,
        lock_environment: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.broker = broker
        self.client: redis.Redis = broker.client()
        self.timeout = timeout
        self.platform_default = platform_default
        self.lock_format = lock_format
        self.lock_environment = lock_environment
        self.options = options or {}
        self.audit_id = uuid.uuid4().hex
        self._seen: dict[str, HostInfo] = {}  # registry entries already read in this audit

    def registry(self) -> list[HostInfo]:
        hosts = all_hosts(self.client)
        self._seen = {h.host: h for h in hosts}
        return hosts

    def _lock_for(
        self, locks: dict[tuple[Path, str], Lock | LockError], path: Path, platform: str
    ) -> Lock | LockError:
        key = (path, platform)
        if key not in locks:
            try:
                locks[key] = load_lock(
                    path, fmt=self.lock_format, platform=platform, environment=self.lock_environment
                )
            except LockError as exc:
                locks[key] = exc
        return locks[key]

    def _store(self, lock: Lock, stored: dict[int, str]) -> str:
        if id(lock) not in stored:
            data = codec.encode(lock.model_dump(mode="json"), quality=5)
            digest = lock_digest(data)
            self.client.set(lock_key(digest), data, ex=LOCK_TTL_SECONDS)
            stored[id(lock)] = digest
        return stored[id(lock)]

    def run(self, targets: list[Target], progress: ProgressFn | None = None) -> FleetOutcome:
        """Raises LockError for a malformed lock; a lock lacking a host's platform is ERROR."""
        # targeting usually read the whole registry already: fetch only names it did not see
        infos: dict[str, HostInfo | None] = {t.host: self._seen.get(t.host) for t in targets}
        infos.update(get_hosts(self.client, [name for name, info in infos.items() if info is None]))
        deadline = time.time() + self.timeout
        locks: dict[tuple[Path, str], Lock | LockError] = {}
        stored: dict[int, str] = {}
        done: dict[str, HostReport] = {}
        sendable: list[tuple[Target, str]] = []
        for target in targets:
            info = infos.get(target.host)
            platform = info.platform if info else self.platform_default
            lock = self._lock_for(locks, target.lock_path, platform)
            if isinstance(lock, PlatformMissing):
                done[target.host] = _host_error(target, info, f"{lock}")
                continue
            if isinstance(lock, LockError):
                raise lock  # a malformed lock is the user's to fix: stop before publishing
            sendable.append((target, self._store(lock, stored)))
        self._publish(sendable, deadline)
        outcome = FleetOutcome(reports=[])
        total = len(targets)
        if progress:
            progress(len(done), total)
        try:
            self._collect(done, {t.host for t, _ in sendable}, deadline, total, progress)
        except KeyboardInterrupt:
            outcome.interrupted = True
        for target in targets:
            if target.host not in done:
                done[target.host] = _unreachable(
                    target, infos.get(target.host), self.timeout, outcome.interrupted
                )
        self._cleanup([t.host for t in targets if done[t.host].status is Status.UNREACHABLE])
        outcome.reports = [done[t.host] for t in targets]
        outcome.locks = {k: v for k, v in locks.items() if isinstance(v, Lock)}
        return outcome

    def _publish(self, sendable: list[tuple[Target, str]], deadline: float) -> None:
        if not sendable:
            return
        from datetime import UTC, datetime

        from producer.publish import publish_tasks
        from worker.app import make_app

        sends = [
            (
                queue_name(target.host),
                {
                    "audit": self.audit_id,
                    "lock": digest,
                    "env": target.env,
                    "options": self.options,
                },
            )
            for target, digest in sendable
        ]
        expires = datetime.fromtimestamp(deadline, tz=UTC)
        publish_tasks(self.client, make_app(self.broker), sends, expires)

    def _collect(
        self,
        done: dict[str, HostReport],
        waiting: set[str],
        deadline: float,
        total: int,
        progress: ProgressFn | None,
    ) -> None:
        key = reply_key(self.audit_id)
        pending = set(waiting)
        while pending:
            remaining = deadline - time.time()
            if remaining <= 0:
                return
            item: Any = self.client.blpop([key], timeout=min(1.0, max(remaining, 0.01)))
            if item is None:
                continue
            host, report = _decode_reply(item[1])
            if host not in pending:
                continue  # a stale or forged answer for a host we did not ask
            pending.discard(host)
            done[host] = report
            if progress:
                progress(len(done), total)

    def _cleanup(self, silent_hosts: list[str]) -> None:
        """Bound what waits for dead hosts: keep only the newest few messages per queue."""
        pipe = self.client.pipeline(transaction=False)
        for host in silent_hosts:
            pipe.ltrim(queue_name(host), 0, MAX_PENDING_PER_HOST - 1)
        pipe.delete(reply_key(self.audit_id))
        pipe.execute()


def _decode_reply(item: bytes) -> tuple[str, HostReport]:
    """A malformed or oversized verdict marks its host ERROR; the audit goes on."""
    try:
        host, payload = unpack_reply(item)
    except codec.CodecError:
        return "", HostReport(host="", status=Status.ERROR, error="unreadable reply")
    try:
        if len(payload) > MAX_VERDICT_BYTES:
            raise codec.CodecError(f"verdict of {len(payload)} bytes exceeds the cap")
        data = codec.decode(payload, max_size=MAX_VERDICT_BYTES * 4)
        report = HostReport.model_validate(data)
        if report.host != host:
            raise ValueError(f"verdict names host {report.host!r}")
    except (codec.CodecError, ValueError) as exc:
        message = str(exc).splitlines()[0]
        return host, HostReport(
            host=host, status=Status.ERROR, error=f"malformed verdict: {message}"
        )
    return host, report


def _env_of(target: Target, info: HostInfo | None) -> str | None:
    return target.env or (info.default_environment if info else None)


def _unverified(target: Target, info: HostInfo | None, status: Status, why: str) -> HostReport:
    """A verdict the producer writes itself, for a host that gave none."""
    return HostReport(
        host=target.host,
        status=status,
        environment=_env_of(target, info),
        platform=info.platform if info else None,
        error=why,
        last_seen=info.last_seen if info else None,
        lock_source=str(target.lock_path),
    )


def _host_error(target: Target, info: HostInfo | None, message: str) -> HostReport:
    return _unverified(target, info, Status.ERROR, message)


def _unreachable(
    target: Target, info: HostInfo | None, timeout: float, interrupted: bool
) -> HostReport:
    why = "interrupted before it answered" if interrupted else f"no answer within {timeout:g} s"
    if info is None:
        why += "; no worker has ever registered under this name"
    else:
        ago = max(0.0, time.time() - info.last_seen)
        why += f"; last seen {_ago(ago)} ago" + (
            " (worker stopped)" if info.state == "stopped" else ""
        )
    return _unverified(target, info, Status.UNREACHABLE, why)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
