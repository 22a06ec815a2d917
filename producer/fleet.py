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
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from producer import known_hosts
from producer.locks.detect import load_lock
from producer.locks.interface import LockError, PlatformMissing
from producer.locks.platforms import lock_platforms
from worker import codec
from worker.broker import BrokerURL
from worker.models import HostReport, Lock, Status
from worker.registry import HostInfo, all_hosts, get_hosts, lock_key, queue_name
from worker.service import (
    ANY_PLATFORM,
    bell_key,
    check_verdict_signature,
    no_platform_message,
    reply_key,
    unpack_reply,
)
from worker.signing import FleetKey

log = logging.getLogger("lockstep.producer")

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
    infrastructure_error: str | None = None


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
    """One audit: targets in, one HostReport per target out, by the deadline.

    The broker may go away at any point after the first ping: every Redis step of the audit
    is retried with backoff until the deadline (the client's own `Retry` absorbs blips), so
    a Redis restart costs the hosts whose verdicts it swallowed, never the audit. If Redis
    was still away at the deadline, `infrastructure_error` says for how long.
    """

    def __init__(
        self,
        broker: BrokerURL,
        *,
        timeout: float,
        platform_default: str | None = None,
        lock_format: str | None = None,
        lock_environment: str | None = None,
        options: dict[str, Any] | None = None,
        key: FleetKey | None = None,
    ) -> None:
        self.broker = broker
        self.client: redis.Redis = broker.client()
        self.timeout = timeout
        # only ever the user's explicit --platform: a remote host's platform is never guessed
        self.platform_default = platform_default
        self.lock_format = lock_format
        self.lock_environment = lock_environment
        self.options = options or {}
        self.key = key
        self.audit_id = uuid.uuid4().hex
        self.infrastructure_error: str | None = None
        self.known: dict[str, float] = {}  # hosts known from earlier audits -> last seen
        self._seen: dict[str, HostInfo] = {}  # registry entries already read in this audit
        self._platforms: dict[Path, list[str] | None] = {}
        self._drain = self.client.register_script(_DRAIN_SCRIPT)

    def registry(self) -> list[HostInfo]:
        hosts = all_hosts(self.client)
        self._seen = {h.host: h for h in hosts}
        return hosts

    def known_hosts(self) -> dict[str, float]:
        """The fleet as earlier audits saw it (Redis hash and local state file together)."""
        self.known = known_hosts.known_hosts(self.client)
        return self.known

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

    def _platforms_of(self, path: Path) -> list[str] | None:
        if path not in self._platforms:
            self._platforms[path] = lock_platforms(
                path, fmt=self.lock_format, environment=self.lock_environment
            )
        return self._platforms[path]

    def _store(self, lock: Lock, stored: dict[int, str]) -> str:
        if id(lock) not in stored:
            data = codec.encode(lock.model_dump(mode="json"), quality=5)
            digest = lock_digest(data)
            self.client.set(lock_key(digest), data, ex=LOCK_TTL_SECONDS)
            stored[id(lock)] = digest
        return stored[id(lock)]

    def _task_locks(
        self,
        target: Target,
        info: HostInfo | None,
        locks: dict[tuple[Path, str], Lock | LockError],
        stored: dict[int, str],
        by_digest: dict[str, Lock],
    ) -> dict[str, str] | str:
        """platform -> digest for one target, or why the lock has nothing for it.

        A registered host gets its registered platform; an unregistered one every platform
        the lock holds (the worker picks its own); a platform-agnostic spec file goes as "*".
        """
        listed = self._platforms_of(target.lock_path)
        registered = info.platform if info else None
        if listed is None:
            wanted = {ANY_PLATFORM: registered or self.platform_default or "noarch"}
        elif registered or self.platform_default:
            chosen = registered or self.platform_default or ""
            wanted = {chosen: chosen}
        else:
            wanted = {p: p for p in listed}
        found: dict[str, str] = {}
        for key, platform in wanted.items():
            lock = self._lock_for(locks, target.lock_path, platform)
            if isinstance(lock, PlatformMissing):
                continue
            if isinstance(lock, LockError):
                raise lock  # a malformed lock is the user's to fix: stop before publishing
            digest = self._store(lock, stored)
            by_digest[digest] = lock
            found[key] = digest
        if not found:
            return no_platform_message(next(iter(wanted.values())), listed)
        return found

    def run(self, targets: list[Target], progress: ProgressFn | None = None) -> FleetOutcome:
        """Raises LockError for a malformed lock; a lock lacking a host's platform is ERROR."""
        # targeting usually read the whole registry already: fetch only names it did not see
        infos: dict[str, HostInfo | None] = {t.host: self._seen.get(t.host) for t in targets}
        infos.update(get_hosts(self.client, [name for name, info in infos.items() if info is None]))
        deadline = time.time() + self.timeout
        locks: dict[tuple[Path, str], Lock | LockError] = {}
        stored: dict[int, str] = {}
        by_digest: dict[str, Lock] = {}
        done: dict[str, HostReport] = {}
        sendable: list[tuple[Target, dict[str, str]]] = []
        for target in targets:
            info = infos.get(target.host)
            task_locks = self._task_locks(target, info, locks, stored, by_digest)
            if isinstance(task_locks, str):
                done[target.host] = _host_error(target, info, task_locks)
                continue
            sendable.append((target, task_locks))
        outcome = FleetOutcome(reports=[])
        total = len(targets)
        if progress:
            progress(len(done), total)
        collector = _Collector(self, infos, deadline)
        try:
            if self._outlast(lambda: self._publish(sendable, deadline), deadline):
                collector.collect(done, {t.host for t, _ in sendable}, total, progress)
        except KeyboardInterrupt:
            outcome.interrupted = True
        for target in targets:
            if target.host not in done:
                done[target.host] = collector.unanswered(target, outcome.interrupted)
        if collector.lost_since is not None:
            lost = max(0.0, time.time() - collector.lost_since)
            self.infrastructure_error = (
                f"broker lost for {lost:.0f} s: Redis was unreachable at the deadline; "
                "hosts whose verdicts had not arrived are UNREACHABLE"
            )
        outcome.reports = [done[t.host] for t in targets]
        self._finish(targets, outcome.reports, infos)
        used = {r.lock_digest for r in outcome.reports if r.lock_digest}
        outcome.locks = {
            (Path(lk.source), lk.platform): lk for d, lk in by_digest.items() if d in used
        }
        outcome.infrastructure_error = self.infrastructure_error
        return outcome

    def _outlast(self, step: Callable[[], None], deadline: float) -> bool:
        """Run `step` until it gets through to Redis or the deadline passes."""
        delay = 0.1
        lost_since: float | None = None
        while True:
            try:
                step()
                return True
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                lost_since = lost_since or time.time()
                if time.time() + delay > deadline:
                    lost = time.time() - lost_since
                    self.infrastructure_error = (
                        f"broker lost for {lost:.0f} s: tasks could not be published"
                    )
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _publish(self, sendable: list[tuple[Target, dict[str, str]]], deadline: float) -> None:
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
                    "locks": task_locks,
                    "env": target.env,
                    "options": self.options,
                    "deadline": deadline,
                },
            )
            for target, task_locks in sendable
        ]
        expires = datetime.fromtimestamp(deadline, tz=UTC)
        publish_tasks(self.client, make_app(self.broker), sends, expires, key=self.key)

    def _finish(
        self, targets: list[Target], reports: list[HostReport], infos: dict[str, HostInfo | None]
    ) -> None:
        """Trim dead hosts' queues, drop the reply list, remember who was seen: best effort."""
        now = time.time()
        seen = {h.host: h.last_seen for h in self._seen.values()}
        seen.update({name: info.last_seen for name, info in infos.items() if info is not None})
        for report in reports:
            if report.instance:  # a worker answered itself (the producer sets no instance)
                seen[report.host] = now
        silent = [r.host for r in reports if r.status is Status.UNREACHABLE]
        try:
            pipe = self.client.pipeline(transaction=False)
            for host in silent:
                pipe.ltrim(queue_name(host), 0, MAX_PENDING_PER_HOST - 1)
            pipe.delete(reply_key(self.audit_id), bell_key(self.audit_id))
            pipe.execute()
            known_hosts.remember(self.client, seen)
        except (redis.RedisError, OSError) as exc:
            log.warning("lockstep: could not tidy up after audit %s: %s", self.audit_id, exc)


# Pops up to ARGV[2] replies; a reply longer than ARGV[1] bytes comes back as
# {length, first bytes} so the producer never holds an oversized reply whole. Emptying the
# reply list also clears the bell list, so a drained audit does not wake up for nothing.
_DRAIN_SCRIPT = """
local out = {}
local cap = tonumber(ARGV[1])
for i = 1, tonumber(ARGV[2]) do
  local item = redis.call('LPOP', KEYS[1])
  if not item then break end
  if string.len(item) > cap then
    out[#out + 1] = {string.len(item), string.sub(item, 1, 512)}
  else
    out[#out + 1] = item
  end
end
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) end
return out
"""
DRAIN_BATCH = 500
# host NUL signature NUL: what a reply carries besides the encoded verdict
_FRAME_SLACK = 1024


class _Collector:
    """Drains one audit's replies until every host answered or the deadline passed."""

    def __init__(self, check: FleetCheck, infos: dict[str, HostInfo | None], deadline: float):
        self.check = check
        self.infos = infos
        self.deadline = deadline
        self.lost_since: float | None = None
        self.provisional: dict[str, HostReport] = {}  # refused verdicts, if nothing better
        self.notes: dict[str, list[str]] = {}  # per host: what was set aside

    def collect(
        self,
        done: dict[str, HostReport],
        waiting: set[str],
        total: int,
        progress: ProgressFn | None,
    ) -> None:
        check = self.check
        keys = [reply_key(check.audit_id), bell_key(check.audit_id)]
        pending = set(waiting)
        delay = 0.1
        while pending:
            remaining = self.deadline - time.time()
            if remaining <= 0:
                return
            try:
                items: Any = check._drain(
                    keys=keys, args=[MAX_VERDICT_BYTES + _FRAME_SLACK, DRAIN_BATCH]
                )
                if not items:
                    check.client.blpop([keys[1]], timeout=min(1.0, max(remaining, 0.01)))
                self.lost_since, delay = None, 0.1
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                if self.lost_since is None:
                    self.lost_since = time.time()
                    log.warning("lockstep: broker lost, retrying until the deadline: %s", exc)
                time.sleep(min(delay, max(self.deadline - time.time(), 0.0)))
                delay = min(delay * 2, 2.0)
                continue
            for item in items:
                host, report = self._judge_item(item, pending)
                if host is None or report is None:
                    continue
                pending.discard(host)
                report.warnings = [*self.notes.pop(host, []), *report.warnings]
                done[host] = report
                if progress:
                    progress(len(done), total)

    def _judge_item(self, item: Any, pending: set[str]) -> tuple[str | None, HostReport | None]:
        if isinstance(item, list):  # an oversized reply: only its head came back
            size, head = int(item[0]), bytes(item[1])
            host = head.partition(b"\x00")[0].decode("utf-8", errors="replace")
            if host not in pending:
                return None, None
            return host, _refused(
                host, f"malformed verdict: verdict of {size} bytes exceeds the cap"
            )
        try:
            host, signature, payload = unpack_reply(bytes(item))
        except codec.CodecError:
            return None, None  # no host to blame
        if host not in pending:
            return None, None  # a late, stale or forged answer for a host we did not ask
        if self.check.key is not None:
            why = check_verdict_signature(
                self.check.key, self.check.audit_id, host, signature, payload
            )
            if why is not None:
                # a forged reply must not pre-empt the real one: keep waiting for it
                self.provisional[host] = _refused(host, f"verdict signature invalid: {why}")
                self._note(host, f"a verdict was refused: signature invalid: {why}")
                return None, None
        report = _decode_payload(host, payload)
        expected = _instance_of(self.infos.get(host))
        if report.instance and expected and report.instance != expected:
            current = _instance_of(get_hosts(self.check.client, [host]).get(host))
            if report.instance != current:  # not a worker that replaced the first one
                self._note(
                    host,
                    f"ignored a verdict from stale worker instance {report.instance[:12]} "
                    f"(registered: {expected[:12]})",
                )
                return None, None
        return host, report

    def _note(self, host: str, message: str) -> None:
        self.notes.setdefault(host, []).append(message)
        log.warning("lockstep: %s: %s", host, message)

    def unanswered(self, target: Target, interrupted: bool) -> HostReport:
        refused = self.provisional.get(target.host)
        if refused is not None:
            refused.warnings = self.notes.get(target.host, [])
            return refused
        info = self.infos.get(target.host)
        report = _unreachable(
            target, info, self.check.timeout, interrupted, self.check.known.get(target.host)
        )
        report.warnings = self.notes.get(target.host, [])
        return report


def _instance_of(info: HostInfo | None) -> str:
    return str(getattr(info, "instance", "") or "") if info is not None else ""


def _refused(host: str, message: str) -> HostReport:
    return HostReport(host=host, status=Status.ERROR, error=message)


def _decode_payload(host: str, payload: bytes) -> HostReport:
    """A malformed or oversized verdict marks its host ERROR; the audit goes on."""
    try:
        if len(payload) > MAX_VERDICT_BYTES:
            raise codec.CodecError(f"verdict of {len(payload)} bytes exceeds the cap")
        data = codec.decode(payload, max_size=MAX_VERDICT_BYTES * 4)
        report = HostReport.model_validate(data)
        if report.host != host:
            raise ValueError(f"verdict names host {report.host!r}")
    except (codec.CodecError, ValueError) as exc:
        message = str(exc).splitlines()[0]
        return _refused(host, f"malformed verdict: {message}")
    return report


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
    target: Target,
    info: HostInfo | None,
    timeout: float,
    interrupted: bool,
    known_since: float | None = None,
) -> HostReport:
    why = "interrupted before it answered" if interrupted else f"no answer within {timeout:g} s"
    if info is None and known_since is not None:
        why += (
            f"; not registered; last seen {known_hosts.describe_last_seen(known_since)}"
            " (known from earlier audits)"
        )
    elif info is None:
        why += "; never registered: no worker has ever registered under this name"
    else:
        ago = max(0.0, time.time() - info.last_seen)
        why += f"; last seen {known_hosts.ago(ago)} ago" + (
            " (worker stopped)" if info.state == "stopped" else ""
        )
    return _unverified(target, info, Status.UNREACHABLE, why)

