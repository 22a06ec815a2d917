"""The body of the `lockstep.verify` task, free of Celery so it can be tested directly.

Whatever happens, the producer gets a verdict: a missing lock, a refused environment or a
crash in our own code all become an ERROR report pushed to the audit's reply list. A task
that raised instead would leave the host silent until the deadline, and an operator would
see UNREACHABLE for a host that is in fact up and broken.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from typing import Any

import redis

from worker import codec
from worker.compare import CompareOptions, compare
from worker.config import ConfigError, WorkerConfig
from worker.models import Finding, HostReport, Lock, Package, Status
from worker.registry import audit_key, lock_key
from worker.snapshot.interface import SnapshotError, SnapshotSource
from worker.verify import judge, take_snapshot

TASK_NAME = "lockstep.verify"
REPLY_TTL_SECONDS = 3600
MAX_LOCK_BYTES = 64 * 1024 * 1024
_AUDIT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def reply_key(audit_id: str) -> str:
    return audit_key(audit_id) + ":replies"


def pack_reply(host: str, payload: bytes) -> bytes:
    """`host NUL payload`: the host survives even when the payload is garbage."""
    return host.encode("utf-8") + b"\x00" + payload


def unpack_reply(item: bytes) -> tuple[str, bytes]:
    host, sep, payload = item.partition(b"\x00")
    if not sep:
        raise codec.CodecError("reply without a host name")
    return host.decode("utf-8", errors="replace"), payload


class Verifier:
    """Holds the worker's config, its Redis client and a small cache of decoded locks."""

    def __init__(self, config: WorkerConfig, client: redis.Redis, source: SnapshotSource) -> None:
        self.config = config
        self.client = client
        self.source = source
        self._locks: OrderedDict[str, Lock] = OrderedDict()
        # verdicts by (prefix, lock, options), valid while the snapshot source hands back
        # the identical package list, i.e. while nothing on the host changed
        self._verdicts: dict[
            tuple[str, str, CompareOptions], tuple[list[Package], tuple[Finding, ...]]
        ] = {}

    def fetch_lock(self, digest: str) -> Lock:
        if not _DIGEST.match(digest):
            raise ValueError("malformed lock digest")
        cached = self._locks.get(digest)
        if cached is not None:
            self._locks.move_to_end(digest)
            return cached
        data: Any = self.client.get(lock_key(digest))
        if data is None:
            raise LookupError(f"lock {digest[:12]} is not in the broker (expired or never stored)")
        if len(data) > MAX_LOCK_BYTES:
            raise ValueError(f"lock {digest[:12]} is larger than {MAX_LOCK_BYTES} bytes")
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"lock {digest[:12]} does not match its digest: refusing it")
        lock = Lock.model_validate(codec.decode(data, max_size=MAX_LOCK_BYTES * 8))
        self._locks[digest] = lock
        if len(self._locks) > 8:
            self._locks.popitem(last=False)
        return lock

    def verify(
        self, lock_digest: str, environment: str | None, options: dict[str, Any]
    ) -> HostReport:
        try:
            env_name, prefix = self.config.prefix_for(environment)
            lock = self.fetch_lock(lock_digest)
            opts = CompareOptions(
                strict=bool(options.get("strict", False)),
                ignore=frozenset(map(str, options.get("ignore", ()))),
                ignore_build=frozenset(map(str, options.get("ignore_build", ()))),
            )
        except (ConfigError, LookupError, ValueError, codec.CodecError) as exc:
            return self._error(environment, str(exc), lock_digest)
        started = time.perf_counter()
        snap = take_snapshot(self.source, prefix)
        findings = None
        memo_key = (str(prefix), lock_digest, opts)
        if not isinstance(snap, SnapshotError):
            memo = self._verdicts.get(memo_key)
            if memo is not None and memo[0] is snap.packages:
                findings = list(memo[1])  # same packages list: the host did not change
            else:
                findings = compare(snap.packages, lock, opts)
                self._verdicts[memo_key] = (snap.packages, tuple(findings))
                while len(self._verdicts) > 32:
                    self._verdicts.pop(next(iter(self._verdicts)))
        report = judge(
            snap,
            lock,
            opts,
            host=self.config.host,
            environment=env_name,
            lock_digest=lock_digest,
            started=started,
            findings=findings,
        )
        report.prefix = str(prefix)
        return report

    def _error(self, environment: str | None, message: str, digest: str | None) -> HostReport:
        return HostReport(
            host=self.config.host,
            status=Status.ERROR,
            environment=environment,
            error=message,
            lock_digest=digest,
            checked_at=time.time(),
        )

    def handle(self, audit: str, lock: str, env: str | None, options: dict[str, Any]) -> None:
        """Run one verification and push the verdict; never raises for a bad request."""
        if not isinstance(audit, str) or not _AUDIT_ID.match(audit):
            return  # nowhere safe to answer
        try:
            report = self.verify(lock, env, options if isinstance(options, dict) else {})
        except Exception as exc:  # our own bug must still produce an answer
            report = self._error(env, f"internal error: {type(exc).__name__}: {exc}", lock)
        report.last_seen = time.time()
        key = reply_key(audit)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, pack_reply(self.config.host, codec.encode(report.model_dump(mode="json"))))
        pipe.expire(key, REPLY_TTL_SECONDS)
        pipe.execute()


def source_for(config: WorkerConfig) -> SnapshotSource:
    if config.source == "conda-meta":
        from worker.snapshot.conda_meta import CondaMetaSource

        return CondaMetaSource(cache=True)
    from worker.snapshot.conda_cli import CondaCliSource

    return CondaCliSource(config.source, timeout=config.source_timeout)
